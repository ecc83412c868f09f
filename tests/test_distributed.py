"""Data-parallel training: 2 CPU processes (gloo) track one process on the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from conftest import tiny_config
from deepspeech2.backends.torch.engine import load_checkpoint_file
from deepspeech2.config import save_config
from deepspeech2.train import train


def losses(run) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(run / "steps.csv"))]


def test_two_processes_match_one_on_the_same_global_batch(tiny_corpus, tmp_path):
    steps = 8
    single = tiny_config(tiny_corpus["train"], "", tmp_path / "features", epochs=1, batch_size=8,
                         max_steps=steps)
    train(single, tmp_path / "single")

    ddp = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], tmp_path / "features", epochs=1, batch_size=4,
                      max_steps=steps)
    save_config(ddp, tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "deepspeech2.cli", "train", "--nproc", "2", "--config", str(tmp_path / "ddp.yaml"),
         "--out", str(tmp_path / "ddp")], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    one, two = losses(tmp_path / "single"), losses(tmp_path / "ddp")
    assert len(one) == len(two) == steps
    # BatchNorm statistics are per process (4 utterances, not 8), so the losses agree
    # closely rather than exactly.
    for a, b in zip(one, two, strict=True):
        assert b == pytest.approx(a, rel=0.05)
    progress = load_checkpoint_file(tmp_path / "ddp" / "last.pt")["progress"]
    assert progress["global_step"] == steps and progress["global_batch_size"] == 8
    # Rank 0 alone writes: one log line per step.
    assert done.stdout.count("epoch: 1 step: 5, loss is") == 1


def test_resume_with_another_process_count(tiny_corpus, tmp_path):
    """A run stopped under 2 processes continues in 1 exactly where it stopped."""
    cfg = tiny_config(tiny_corpus["train"], "", tmp_path / "features", epochs=1, batch_size=4, max_steps=3)
    save_config(cfg, tmp_path / "c.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "deepspeech2.cli", "train", "--nproc", "2", "--config",
                           str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert load_checkpoint_file(tmp_path / "run" / "last.pt")["progress"]["step_in_epoch"] == 3
    from deepspeech2.cli import main

    assert main(["train", "--resume", str(tmp_path / "run"), "train.max_steps=0"]) == 0
    progress = load_checkpoint_file(tmp_path / "run" / "last.pt")["progress"]
    # The interrupted epoch ends with its own 12 batches of 8 (9 left after 3).
    assert progress["epoch"] == 1 and progress["global_step"] == 3 + 9
    rows = list(csv.DictReader(open(tmp_path / "run" / "steps.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
