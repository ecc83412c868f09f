"""The MindSpore backend end to end on a tiny model: training learns, resumes exactly,
evaluates, exports to MindIR and ONNX and transcribes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mindspore")

from conftest import tiny_config  # noqa: E402
from deepspeech2.backends.base import create_backend  # noqa: E402
from deepspeech2.backends.mindspore.engine import bucket_length, checkpoint_metadata, read_ckpt  # noqa: E402
from deepspeech2.checkpoints import read_config  # noqa: E402
from deepspeech2.cli import main as ds2  # noqa: E402
from deepspeech2.config import Config, save_config  # noqa: E402
from deepspeech2.data.dataset import Batch  # noqa: E402
from deepspeech2.data.manifest import Utterance, read_manifest, write_manifest  # noqa: E402

EPOCHS = 14  # bucket padding dilutes BatchNorm statistics: a few more epochs than the PyTorch test


def ms_config(train_manifest, dev_manifest, cache_dir, **train) -> Config:
    cfg = tiny_config(train_manifest, dev_manifest, cache_dir, **train)
    # MindSpore's CPU GRU unrolls a Python loop per time step (slow to compile); its LSTM is one kernel.
    cfg.model.rnn_type = "lstm"
    cfg.backend = "mindspore"
    return cfg


@pytest.fixture(scope="module")
def ms_run(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms_run")
    cfg = ms_config(tiny_corpus["train"], tiny_corpus["dev"], out / "features", epochs=EPOCHS, keep_checkpoints=3)
    cfg.backend = "torch"  # the command line picks the backend
    save_config(cfg, out / "cfg.yaml")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        assert ds2(["train", "--config", str(out / "cfg.yaml"), "--backend", "mindspore",
                    "--out", str(out / "run")]) == 0
    (out / "run" / "train.log").write_text(log.getvalue())
    return out / "run"


def test_bucket_lengths_are_few_and_cover():
    lengths = {bucket_length(n) for n in range(1, 1502)}
    assert len(lengths) <= 10 and max(lengths) == 1536
    for n in range(1, 3000):
        assert n <= bucket_length(n) <= max(64, 1.5 * n)


def test_training_learns_and_writes_the_run(ms_run):
    steps = list(csv.DictReader(open(ms_run / "steps.csv")))
    losses = [float(r["loss"]) for r in steps]
    assert len(losses) == EPOCHS * 12
    assert np.mean(losses[-12:]) < 0.1 * np.mean(losses[:12])
    metrics = json.loads((ms_run / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == list(range(1, EPOCHS + 1))
    assert min(m["dev_wer"] for m in metrics) < 1.0 and metrics[-1]["dev_wer"] < 1.0
    assert metrics[-1]["skipped_batches"] == 0
    log = (ms_run / "train.log").read_text()
    assert "epoch: 1 step: 1, loss is " in log and "on mindspore" in log
    numbered = sorted(p.name for p in ms_run.glob("DeepSpeech-*.ckpt"))
    assert numbered == [f"DeepSpeech-{e}_12.ckpt" for e in (EPOCHS - 2, EPOCHS - 1, EPOCHS)]
    assert (ms_run / "last.ckpt").exists() and (ms_run / "best.ckpt").exists()
    meta = checkpoint_metadata(ms_run / "last.ckpt")
    assert meta["format"] == "deepspeech2-mindspore"
    assert meta["progress"]["epoch"] == EPOCHS and meta["progress"]["global_step"] == EPOCHS * 12
    cfg = read_config(ms_run / "last.ckpt")
    assert cfg.backend == "mindspore" and cfg.model.rnn_hidden == 48 and cfg.model.rnn_type == "lstm"
    names = set(read_ckpt(ms_run / "last.ckpt"))
    # The official tree's names, Adam's state under MindSpore's own names, the loss scale.
    assert {"conv.conv1.weight", "conv.bn2.moving_variance", "RNN.lstms.1.weight_hh_l0_reverse",
            "RNN.norms.0.gamma", "fc.module.weight", "moment1.fc.module.weight", "beta1_power",
            "scale_sense"} <= names


def test_learning_rate_is_applied(tmp_path):
    cfg = ms_config("", "", tmp_path)
    backend = create_backend(cfg, "cpu")
    rng = np.random.default_rng(0)
    batch = Batch(rng.standard_normal((2, 161, 30)).astype(np.float32), np.array([30, 24]),
                  np.array([[1, 2, 3], [4, 5, 0]]), np.array([3, 2]), ["", ""], ["", ""])

    def weights() -> dict:
        return {k: v for k, v in backend.network_parameters().items() if "moving_" not in k}

    backend.set_lr(0.0)
    before = weights()
    assert backend.train_step(batch) > 0
    assert all(np.array_equal(before[k], v) for k, v in weights().items())
    backend.set_lr(1e-3)
    backend.train_step(batch)
    moved = [k for k, v in weights().items() if not np.array_equal(before[k], v)]
    assert len(moved) == len(before)


def _one_bucket_manifest(root: Path, path: Path, count: int = 16) -> Path:
    """FSDD utterances of 0.42-0.60 s (41-59 frames): one bucket, so one compiled graph per run."""
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    utts = [Utterance(str(root / r["path"]), r["transcript"], float(r["duration"]), r["speaker"])
            for r in rows if 0.42 <= float(r["duration"]) <= 0.60][:count]
    assert len(utts) == count
    return write_manifest(path, utts)


def test_resume_is_exact(fsdd_root, tmp_path):
    """A run stopped after step 3 of 6 and resumed with ``ds2 train --resume`` ends with
    the same weights, optimizer and loss-scale state as one never stopped."""
    manifest = _one_bucket_manifest(fsdd_root, tmp_path / "train.jsonl")
    cfg = ms_config(manifest, "", tmp_path / "features", epochs=3)
    save_config(cfg, tmp_path / "cfg.yaml")
    assert ds2(["train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "straight")]) == 0
    assert ds2(["train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "stopped"),
                "train.max_steps=3"]) == 0
    assert checkpoint_metadata(tmp_path / "stopped" / "last.ckpt")["progress"]["global_step"] == 3
    assert ds2(["train", "--resume", str(tmp_path / "stopped"), "train.max_steps=0"]) == 0
    straight, resumed = read_ckpt(tmp_path / "straight" / "last.ckpt"), read_ckpt(tmp_path / "stopped" / "last.ckpt")
    arrays = [k for k, v in straight.items() if not isinstance(v, str)]
    assert arrays == [k for k, v in resumed.items() if not isinstance(v, str)]
    for name in arrays:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    rows = list(csv.DictReader(open(tmp_path / "stopped" / "steps.csv")))
    assert [int(r["global_step"]) for r in rows] == list(range(1, 7))


def test_evaluation_of_a_ckpt(ms_run, tiny_corpus, tmp_path, capsys):
    assert ds2(["eval", "--checkpoint", str(ms_run / "best.ckpt"), "--manifest", str(tiny_corpus["dev"]),
                "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["num_utterances"] == 24 and results["wer"] < 1.0
    # The same checkpoint evaluated by the PyTorch backend (converted on the fly) scores the same.
    assert ds2(["eval", "--checkpoint", str(ms_run / "best.ckpt"), "--manifest", str(tiny_corpus["dev"]),
                "--out", str(tmp_path / "eval-torch"), "--quiet", "--backend", "torch"]) == 0
    by_torch = json.loads((tmp_path / "eval-torch" / "results.json").read_text())
    assert by_torch["wer"] == results["wer"] and by_torch["cer"] == results["cer"]


def test_mindir_and_onnx_exports_reload_and_match(ms_run, tiny_corpus, tmp_path, capsys):
    from deepspeech2.backends.mindspore.export import mindir_config

    mindir, onnx = tmp_path / "model.mindir", tmp_path / "model.onnx"
    for fmt, path in (("mindir", mindir), ("onnx", onnx)):
        assert ds2(["export", "--checkpoint", str(ms_run / "best.ckpt"), "--format", fmt, "--out", str(path),
                    "--manifest", str(tiny_corpus["dev"])]) == 0
        out = capsys.readouterr().out
        diff = float(out.split("max abs difference to the checkpoint's output ")[1].split()[0])
        assert path.stat().st_size > 0 and diff < 1e-4, (fmt, diff)
    assert mindir_config(mindir) == read_config(ms_run / "best.ckpt").to_dict()
    files = [u.path for u in read_manifest(tiny_corpus["dev"])[:4]]
    assert ds2(["transcribe", *files, "--checkpoint", str(ms_run / "best.ckpt")]) == 0
    by_mindspore = capsys.readouterr().out
    assert ds2(["transcribe", *files, "--onnx", str(onnx)]) == 0
    assert capsys.readouterr().out == by_mindspore and len(by_mindspore.splitlines()) == 4
