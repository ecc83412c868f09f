"""``ds2 train`` killed with SIGKILL at random moments, one of them in the middle of a
checkpoint write, resumes each time exactly (benchmarks/kill_resume.py, three kills here;
the README's figures come from the script's ten)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kill_resume import kill_and_resume  # noqa: E402


def test_killed_three_times_resumes_exactly(tiny_corpus, tmp_path):
    report = kill_and_resume(tmp_path, tiny_corpus["train"], kills=3, seed=1, epochs=1)
    assert report["failures"] == []
    assert report["kills"] == 3 and report["kills_during_a_checkpoint_write"] == 1, report["events"]
    assert report["steps"] == 12
