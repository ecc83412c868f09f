"""The course-style wrappers in scripts/ build the ds2 command lines the README shows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DS2": "echo"}  # print the ds2 command instead of running it
    for key in ("OUT", "MANIFEST", "TEST_MANIFEST", "TRAIN_MANIFEST", "DEV_MANIFEST", "CONFIG"):
        env.pop(key, None)
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, env=env)


def test_train_wrapper_passes_the_pretrained_checkpoint_and_overrides():
    done = run("run_standalone_train_cpu.sh", "DeepSpeech.ckpt", "train.epochs=5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "train", "--config", "mindspore_official", "--backend", "mindspore", "--device", "cpu",
        "--out", "runs/mindspore_official_cpu", "--pretrained", "DeepSpeech.ckpt",
        "data.train_manifest=data/librispeech/train-clean-100.jsonl",
        "data.dev_manifest=data/librispeech/dev-clean.jsonl", "train.epochs=5"]


def test_eval_and_export_wrappers():
    done = run("run_eval_cpu.sh", "runs/ms/best.ckpt", "data/test.jsonl")
    assert done.stdout.split() == ["eval", "--checkpoint", "runs/ms/best.ckpt", "--manifest", "data/test.jsonl",
                                   "--backend", "mindspore", "--out", "runs/ms/eval-test"]
    done = run("export.sh", "runs/ms/best.ckpt", "onnx")
    assert done.stdout.split() == ["export", "--checkpoint", "runs/ms/best.ckpt", "--backend", "mindspore",
                                   "--format", "onnx", "--out", "runs/ms/best.onnx"]


@pytest.mark.parametrize("script", ["run_eval_cpu.sh", "export.sh"])
def test_wrappers_without_a_checkpoint_print_their_usage(script):
    done = run(script)
    assert done.returncode == 2 and done.stderr.startswith(f"usage: bash scripts/{script} CKPT")
