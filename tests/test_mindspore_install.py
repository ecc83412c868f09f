"""Without MindSpore installed, ``--backend mindspore`` and .ckpt files say how to install it.
(Runs everywhere: MindSpore is hidden from a subprocess.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

INSTALL = "pip install 'deepspeech2[mindspore]'"


def run_without_mindspore(*args: str) -> subprocess.CompletedProcess:
    script = ("import sys; sys.modules['mindspore'] = None\n"
              "from deepspeech2.cli import main\n"
              f"sys.exit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ("train", "--config", "mini", "--backend", "mindspore", "data.train_manifest=train.jsonl"),
    ("eval", "--checkpoint", "model.ckpt", "--manifest", "dev.jsonl"),
    # (``ds2 convert model.ckpt model.pt`` no longer needs MindSpore: backends/mindspore/ckpt_file.py
    # reads the .ckpt itself; tests/test_mindspore_ckpt_file.py checks it against MindSpore.)
])
def test_mindspore_backend_says_how_to_install(args, tmp_path):
    done = run_without_mindspore(*args)
    assert done.returncode != 0
    assert INSTALL in done.stderr and "mindspore==2.10.0" in done.stderr, done.stderr
