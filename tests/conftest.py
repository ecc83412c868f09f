from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import pytest

from deepspeech2.config import Config
from deepspeech2.data.manifest import Utterance, write_manifest
from synthetic_fsdd import build_synthetic_fsdd

REPO = Path(__file__).resolve().parents[1]
# The read-only data next to the project (see ../shared/data/README.md); DS2_SHARED_DATA
# points elsewhere (a path that does not exist tests what a clone without it does).
SHARED_DATA = Path(os.environ.get("DS2_SHARED_DATA") or REPO.parent / "shared" / "data")
FSDD = SHARED_DATA / "fsdd"


@pytest.fixture(scope="session")
def fsdd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Free Spoken Digit Dataset copy, or, without one, a synthesized stand-in in its
    layout (tests/synthetic_fsdd.py, about 10 s once per session): never a skip."""
    if (FSDD / "manifest.csv").is_file():
        return FSDD
    return build_synthetic_fsdd(tmp_path_factory.getbasetemp() / "synthetic_fsdd")


# -- the MindSpore backend's modules run in their own environment ----------------------
# MindSpore 2.10 needs numpy<2, so scripts/test.sh runs these in .venv-ms
# (scripts/test_mindspore.sh). Where MindSpore is not installed they are not collected,
# rather than reported as skips; the summary says where they run.
MINDSPORE_HERE = importlib.util.find_spec("mindspore") is not None
MINDSPORE_MODULES = ["test_mindspore_checkpoints.py", "test_mindspore_ckpt_file.py", "test_mindspore_convert.py",
                     "test_mindspore_training.py"]
collect_ignore = [] if MINDSPORE_HERE else MINDSPORE_MODULES


# -- under CI, a skip nobody allowed fails the run -------------------------------------
# A test that may skip says why with @pytest.mark.allowed_skip("reason"); a module that
# skips as a whole while it is imported fails the run too.
_unexpected_skips: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allowed_skip(reason): this test may skip under CI=true, for this reason")


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and item.get_closest_marker("allowed_skip") is not None:
        report.user_properties.append(("allowed_skip", item.get_closest_marker("allowed_skip").args))
    return report


def _note_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or any(name == "allowed_skip" for name, _ in getattr(report, "user_properties", ())):
        return
    _unexpected_skips.append((report.nodeid, _skip_reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ci() and _unexpected_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not MINDSPORE_HERE:
        terminalreporter.line(f"mindspore is not installed here: {len(MINDSPORE_MODULES)} modules "
                              "(tests/test_mindspore_*.py) run in .venv-ms, bash scripts/test_mindspore.sh")
    if not _unexpected_skips:
        return
    verdict = "fail the run (CI=true)" if _ci() else "would fail the run under CI=true"
    terminalreporter.section(f"{len(_unexpected_skips)} skipped tests not allowed to skip: they {verdict}")
    for nodeid, reason in _unexpected_skips:
        terminalreporter.line(f"SKIPPED {nodeid}: {reason}")
    terminalreporter.line("(a legitimate skip says why with @pytest.mark.allowed_skip('reason'); "
                          "see tests/conftest.py)")


def fsdd_subset(root: Path, out: Path, digits: tuple[str, ...], takes: range, name: str) -> Path:
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    utts = [Utterance(str(root / r["path"]), r["transcript"], float(r["duration"]), r["speaker"])
            for r in rows if r["transcript"] in digits and int(Path(r["path"]).stem.split("_")[2]) in takes]
    return write_manifest(out / f"{name}.jsonl", utts)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, fsdd_root) -> dict[str, Path]:
    """Two digits from every FSDD speaker: 96 training and 24 dev utterances."""
    out = tmp_path_factory.mktemp("tiny_corpus")
    digits = ("ZERO", "ONE")
    return {"train": fsdd_subset(fsdd_root, out, digits, range(10, 18), "train"),
            "dev": fsdd_subset(fsdd_root, out, digits, range(0, 2), "dev")}


def tiny_config(train_manifest: str | Path = "", dev_manifest: str | Path = "", cache_dir: str | Path = "",
                **train) -> Config:
    """A model small enough to train in seconds."""
    values = {
        "model": {"conv_channels": [8, 8], "conv_kernels": [[21, 11], [11, 11]], "conv_strides": [[2, 2], [2, 1]],
                  "conv_activation": "hardtanh", "rnn_type": "gru", "rnn_hidden": 48, "rnn_layers": 2,
                  "rnn_batchnorm": True},
        "data": {"train_manifest": str(train_manifest), "dev_manifest": str(dev_manifest),
                 "cache_dir": str(cache_dir), "num_workers": 1},
        "train": {"epochs": 4, "batch_size": 8, "optimizer": "adam", "lr": 2e-3, "lr_schedule": "constant",
                  "threads": 1, "log_every": 5, **train},
    }
    return Config.from_dict(values)
