"""``run_bench``: the machine's figures, every selected row (a failing row is reported, the others still run),
and bench.md, bench.json, bench.png."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_write_text
from . import rows as registry
from .flops import matmul_gflops
from .harness import SETUPS, Bench, NotRun, RowResult, mindspore_available, torch_threads
from .plot import plot_report
from .report import add_speedups, markdown_report, summary_line
from .workload import Workload


def read_wer(path: str | Path | None) -> dict[str, float]:
    """``--wer-json``: {row name: WER as a fraction}."""
    if not path:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--wer-json {path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--wer-json {path}: not JSON ({e})") from None
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise ValueError(f"--wer-json {path}: expected an object of row name -> WER fraction, e.g. "
                         '{"torch-mini": 0.12}')
    return {str(k): float(v) for k, v in values.items()}



def machine_info(workload: Workload, threads: int) -> dict:
    import torch

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    n = workload.matmul_size
    with torch_threads(threads):
        rates = {f"matmul_{dtype}_gflops": matmul_gflops(n, dtype) for dtype in ("fp32", "bf16")}
    return {"cpu": model, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version(), "mindspore": mindspore_available(), "matmul_size": n, **rates}


def run_row(b: Bench, name: str, skip: str = "") -> RowResult:
    """Run one row; ``skip``: the reason it is reported as not run instead."""
    fn = registry.TRAINING_ROWS.get(name) or registry.INFERENCE_ROWS.get(name) or registry.DECODING_ROWS[name]
    kind = "train" if name in registry.TRAINING_ROWS else "infer" if name in registry.INFERENCE_ROWS else "decode"
    try:
        if skip:
            raise NotRun(skip)
        row = fn(b)
    except NotRun as e:
        row = RowResult(name, SETUPS.get(name, ""), kind=kind, status="not run", note=str(e))
    except Exception as e:  # a failing row is reported, the others still run
        first = (str(e).strip().splitlines() or [""])[0][:300]
        row = RowResult(name, SETUPS.get(name, ""), kind=kind, status="failed", error=f"{type(e).__name__}: {first}",
                        details={"traceback": traceback.format_exc(limit=6)})
    row.name, row.kind = name, kind
    if row.wer is None:
        row.wer = b.wer.get(name)
    gc.collect()
    return row



def run_bench(out_dir: str | Path, quick: bool = False, rows: str | list[str] | None = None,
              threads: int | None = None, wer_json: str | Path | None = None, tiny: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run the selected rows and write bench.md, bench.json and bench.png to ``out_dir``; returns the report."""
    import shutil

    import torch

    names = registry.select_rows(rows)
    wer = read_wer(wer_json)
    threads = threads or torch.get_num_threads()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workload = Workload.create(quick, tiny)
    b = Bench(workload, threads, wer, log)
    started = time.perf_counter()
    try:
        machine = machine_info(workload, threads)
        log(f"{machine['cpu']}, {machine['cores']} cores, {threads} thread(s): {machine['matmul_size']}² matmul "
            f"fp32 {machine['matmul_fp32_gflops']:.0f} GFLOP/s, bf16 {machine['matmul_bf16_gflops']:.0f} GFLOP/s")
        results = []
        for i, name in enumerate(names, 1):
            t0 = time.perf_counter()
            skip = (f"left out of --quick ({registry.FULL_RUN_ONLY[name]}); ds2 bench --quick --rows {name} times it"
                    if quick and not rows and name in registry.FULL_RUN_ONLY else "")
            results.append(run_row(b, name, skip))
            log(summary_line(i, len(names), results[-1], time.perf_counter() - t0))
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    train = [r for r in results if r.kind == "train"]
    infer = [r for r in results if r.kind == "infer"]
    decode = [r for r in results if r.kind == "decode"]
    add_speedups(train)
    add_speedups(infer)
    epoch = workload.epoch
    report = {
        "version": 1,
        "machine": machine,
        "workload": {"quick": quick, "tiny": tiny, "pool_utterances": len(workload.pool),
                     "pool_min_s": min(workload.pool), "pool_max_s": max(workload.pool), "steps": workload.steps,
                     "min_seconds": workload.min_seconds, "warmup_steps": workload.warmup_steps,
                     "infer_seconds": workload.infer_seconds, "epoch_utterances": len(epoch),
                     "epoch_hours": float(epoch.sum()) / 3600, "epoch_mean_s": float(epoch.mean()),
                     "epoch_max_s": float(epoch.max()),
                     "epoch_10_16_fraction": float(((epoch > 10) & (epoch < 16)).mean()),
                     "seconds": round(time.perf_counter() - started, 1)},
        "ladder": asdict(b.ladder),
        "training": [asdict(r) for r in train],
        "inference": [asdict(r) for r in infer],
        "decoding": [asdict(r) for r in decode],
    }
    text = markdown_report(report)
    atomic_write_text(out / "bench.md", text)
    atomic_write_text(out / "bench.json", json.dumps(report, indent=2) + "\n")
    plot_report(report, out / "bench.png")
    log("\n" + text)
    log(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'} "
        f"in {report['workload']['seconds']:.0f} s")
    return report
