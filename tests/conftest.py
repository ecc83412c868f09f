from __future__ import annotations

import csv
from pathlib import Path

import pytest

from deepspeech2.config import Config
from deepspeech2.data.manifest import Utterance, write_manifest

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd"


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    if not (FSDD / "manifest.csv").is_file():
        pytest.skip(f"the Free Spoken Digit Dataset copy is not at {FSDD}")
    return FSDD


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
