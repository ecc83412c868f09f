"""Kill ``ds2 train`` with SIGKILL at random moments and resume it, again and again.

    python benchmarks/kill_resume.py [--kills 10] [--seed 0] [--out DIR]

A tiny model (the tests' one) trains on FSDD's ZERO and ONE (96 utterances; the
synthesized stand-in of tests/synthetic_fsdd.py without ../shared/data/fsdd), writing a
checkpoint after every step. One run goes straight through; the other is killed
``--kills`` times, each time resumed with ``ds2 train --resume``. Most kills come after a
random delay; every third waits for a checkpoint write to start (a temporary file in the
run folder) and kills the process in the middle of it. After every kill each checkpoint
in the folder must load, and each resumed process's first step must log the loss the
straight run logged for that step. At the end the killed run's step log (loss and LR of
every step) and final weights must equal the straight run's. Prints a JSON summary; exits
1 when a check fails. tests/test_kill_resume.py runs it with three kills.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from deepspeech2.backends.torch.engine import load_checkpoint_file

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"conv_channels": [8, 8], "conv_kernels": [[21, 11], [11, 11]], "conv_strides": [[2, 2], [2, 1]],
              "conv_activation": "hardtanh", "rnn_type": "gru", "rnn_hidden": 48, "rnn_layers": 2,
              "rnn_batchnorm": True}


def write_config(path: Path, train_manifest: Path, cache_dir: Path, epochs: int = 3) -> Path:
    cfg = {"model": TINY_MODEL,
           "data": {"train_manifest": str(train_manifest), "cache_dir": str(cache_dir), "num_workers": 1},
           "train": {"epochs": epochs, "batch_size": 8, "optimizer": "adam", "lr": 2e-3, "lr_schedule": "constant",
                     "threads": 1, "log_every": 5, "checkpoint_every": 1}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepspeech2.cli", "train", *args]


def _step_rows(run: Path) -> list[tuple[str, ...]]:
    """steps.csv's rows (global_step, epoch, step, loss, lr), in file order, duplicates kept."""
    path = run / "steps.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [tuple(r) for r in list(csv.reader(f))[1:]]


def _steps(run: Path) -> dict[int, tuple[str, ...]]:
    return {int(r[0]): r for r in _step_rows(run) if len(r) == 5 and r[0].isdigit()}


def _temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.glob(".*tmp*")) if run.exists() else []


def _check_checkpoints(run: Path) -> tuple[int | None, int]:
    """(global step of last.pt or None, number of checkpoint files); raises when one does not load."""
    files = sorted(run.glob("*.pt"))
    for path in files:
        load_checkpoint_file(path)  # raises ModelFileError naming the file
    last = run / "last.pt"
    return (load_checkpoint_file(last)["progress"]["global_step"] if last.exists() else None), len(files)


def _wait_for_writes(proc: subprocess.Popen, run: Path, n: int, timeout: float) -> bool:
    """Return as soon as ``proc`` has begun writing its ``n``-th checkpoint (its temporary file
    appeared); False if it ended or ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while n and time.monotonic() < deadline and proc.poll() is None:
        try:
            names = os.listdir(run)
        except FileNotFoundError:
            names = []
        seen |= {name for name in names if name.startswith(".DeepSpeech-") and ".tmp" in name}
        if len(seen) >= n:
            return True
        time.sleep(0.0005)
    return proc.poll() is None and not n


def _straight_run(cfg: Path, out: Path) -> tuple[float, float]:
    """Train without interruption; (seconds to the first logged step, seconds of training after it)."""
    started = time.monotonic()
    proc = subprocess.Popen(_train_cmd("--config", str(cfg), "--out", str(out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (out / "steps.csv").exists():
        time.sleep(0.01)
    first_step = time.monotonic() - started
    if proc.wait() != 0:
        raise RuntimeError(f"the straight run failed (exit {proc.returncode}); run it by hand: "
                           f"{' '.join(_train_cmd('--config', str(cfg), '--out', str(out)))}")
    return first_step, time.monotonic() - started - first_step


def kill_and_resume(work: Path, train_manifest: Path, kills: int = 10, seed: int = 0, epochs: int = 3) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    cfg = write_config(work / "cfg.yaml", train_manifest, work / "features", epochs)
    started = time.monotonic()
    startup_s, train_s = _straight_run(cfg, work / "straight")
    reference = _steps(work / "straight")
    step_s = train_s / len(reference)
    rng = random.Random(seed)
    run = work / "killed"
    events, failures = [], []
    resumed_from = None  # the global step the current process starts from (None: fresh)
    for k in range(kills):
        args = ("--resume", str(run)) if (run / "last.pt").exists() else ("--config", str(cfg), "--out", str(run))
        launched = time.time()
        proc = subprocess.Popen(_train_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mode = "during a checkpoint write" if k % 3 == 2 else "random"
        # Each process gets at most three steps, so the run never finishes before its kills.
        if mode == "random":
            writes = rng.randint(0, 2)
            # No write to wait for: killed while it imports, loads data or trains its first step;
            # else at a random moment of the step after its ``writes``-th checkpoint.
            delay = rng.uniform(0.2, startup_s + step_s) if not writes else rng.uniform(0.0, step_s)
            if _wait_for_writes(proc, run, writes, timeout=3 * (startup_s + train_s)):
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    pass
            delay = round(delay, 2)
        else:
            writes, delay = rng.randint(1, 3), None
            if not _wait_for_writes(proc, run, writes, timeout=3 * (startup_s + train_s)):
                mode = "random (no write seen)"
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        temporaries = _temporaries(run)
        if proc.returncode != -signal.SIGKILL:
            events.append({"kill": k + 1, "mode": mode, "finished before the kill": True})
            break
        try:
            step, files = _check_checkpoints(run)
        except Exception as e:  # a checkpoint that does not load
            failures.append(f"kill {k + 1}: {e}")
            break
        # The first step this process ran: a resume drops rows after its checkpoint from the log
        # (rewriting it), so a row there in a log rewritten since the launch is this process's.
        first = (resumed_from or 0) + 1
        log = run / "steps.csv"
        logged = _steps(run).get(first) if log.exists() and log.stat().st_mtime >= launched else None
        same = None if logged is None else logged == reference[first]
        if same is False:
            failures.append(f"kill {k + 1}: step {first} logged {logged}, the straight run {reference[first]}")
        events.append({"kill": k + 1, "mode": mode, "after_writes": writes, "then_s": delay,
                       "started_at_step": resumed_from or 0, "last_checkpoint_step": step,
                       "checkpoint_files": files, "temporaries_left": temporaries,
                       "first_step_loss_equal": same})
        resumed_from = step
    done = subprocess.run(_train_cmd("--resume", str(run)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        failures.append(f"final resume failed: {done.stderr[-500:]}")
    else:
        final = _step_rows(run)
        if final != _step_rows(work / "straight"):
            differ = [s for s in reference if _steps(run).get(s) != reference[s]]
            failures.append(f"the step log differs from the straight run's ({len(final)} rows, "
                            f"{len(reference)} expected; different steps: {differ[:10]})")
        a, b = (load_checkpoint_file(r / "last.pt")["model"] for r in (work / "straight", run))
        if a.keys() != b.keys() or not all(torch.equal(a[n], b[n]) for n in a):
            failures.append("final weights differ from the straight run's")
    killed = [e for e in events if "finished before the kill" not in e]
    return {
        "kills": len(killed),
        "kills_during_a_checkpoint_write": sum(1 for e in killed if e["mode"] == "during a checkpoint write"
                                               and e["temporaries_left"]),
        "resumes_with_first_step_checked": sum(1 for e in killed if e["first_step_loss_equal"] is not None),
        "steps": len(reference),
        "straight_run_s": round(startup_s + train_s, 1),
        "total_s": round(time.monotonic() - started, 1),
        "events": events,
        "failures": failures,
    }


def _corpus(out: Path) -> Path:
    """ZERO and ONE, takes 10-17 of every speaker: FSDD, or its synthesized stand-in."""
    sys.path.insert(0, str(REPO / "tests"))
    from deepspeech2.data.manifest import Utterance, write_manifest
    from synthetic_fsdd import build_synthetic_fsdd

    shared = Path(os.environ.get("DS2_SHARED_DATA") or REPO.parent / "shared" / "data") / "fsdd"
    root = shared if (shared / "manifest.csv").is_file() else build_synthetic_fsdd(out / "synthetic_fsdd")
    with open(root / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["transcript"] in ("ZERO", "ONE")
                and 10 <= int(Path(r["path"]).stem.split("_")[2]) < 18]
    return write_manifest(out / "train.jsonl", [Utterance(str(root / r["path"]), r["transcript"], float(r["duration"]),
                                                          r["speaker"]) for r in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ds2-kill-resume-"))
    report = kill_and_resume(out, _corpus(out), args.kills, args.seed, args.epochs)
    print(json.dumps(report, indent=1))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
