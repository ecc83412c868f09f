"""The package's imports form no circle (scripts/import_graph.py), and the script finds one when there is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "import_graph.py"


def test_package_imports_form_no_circle():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no circle" in done.stdout
    # Deferred (function-level) imports count: checkpoints.py dispatches to the backends inside functions.
    graph = dict(line.split(" -> ") for line in done.stdout.splitlines() if " -> " in line)
    assert "backends.torch.engine" in graph["checkpoints"]
    # The layers point one way: no backend imports the stages above it.
    above = {"checkpoints", "transcribe", "evaluate", "export", "train", "recipes", "cli"}
    for module, deps in graph.items():
        if module.startswith("backends"):
            assert not above & set(deps.split(", ")), f"{module} imports {above & set(deps.split(', '))}"


def test_a_circle_is_found_and_fails(tmp_path):
    package = tmp_path / "deepspeech2"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .data import b\n")
    (package / "data" / "b.py").write_text("def f():\n    from ..c import x\n")  # function-level
    (package / "c.py").write_text("import deepspeech2.a\nx = 1\n")
    (package / "d.py").write_text("from . import a\n")  # depends on the circle, is not in it
    done = subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "CIRCLE (3 modules): a, c, data.b" in done.stdout
    assert "d -> a" in done.stdout and "CIRCLE (4" not in done.stdout
