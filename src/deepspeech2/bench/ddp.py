"""The ``torch-ddp2`` row: two data-parallel torchrun processes (gloo) on the same global batch, and the worker
each process runs (``python -m deepspeech2.bench --ddp-worker SPEC``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..config import Config
from ..text import Alphabet
from .flops import training_flops
from .harness import Bench, Measurement, RowResult
from .workload import HOP, SAMPLE_RATE, frames_of, synthetic_batch


def row_torch_ddp2(b: Bench) -> RowResult:
    """Two data-parallel processes (torchrun, gloo) on the same global batch of 20, 10 per process."""
    cfg = b.config(threads=max(1, b.threads // 2), precision=b.ladder.precision)
    groups = b.bucketed_indices(20)
    spec = {"config": cfg.to_dict(), "pool": b.w.pool, "seed": b.w.seed, "groups": groups,
            "warmup_utterance_s": b.w.warmup_utterance_s, "warmup_steps": b.w.warmup_steps,
            "steps": b.w.steps, "min_seconds": b.w.min_seconds, "compile": b.ladder.compile,
            "result": str(b.tmp / "ddp_result.json")}
    spec_path = b.tmp / "ddp_spec.json"
    spec_path.write_text(json.dumps(spec))
    paths = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.train.threads), "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "deepspeech2.bench", "--ddp-worker", str(spec_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        lines = [x for x in (done.stderr + done.stdout).splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x or "error" in x] or lines
        raise RuntimeError(f"torchrun exited with {done.returncode}: {errors[-1] if errors else ''}")
    result = json.loads(Path(spec["result"]).read_text())
    shapes = [tuple(s) for s in result["shapes"]]
    m = Measurement(result["step_seconds"], result["audio_seconds"], sum(n * t for n, t in shapes),
                    training_flops(cfg.model, shapes), result["warmup_seconds"])
    # Each process loads its own half of a batch, at the same time as the other: half the data-path time.
    row = b.train_result("torch-ddp2", f"+ 2 processes x {cfg.train.threads} thread(s) (torchrun, gloo)", cfg, m,
                         b.w.epoch_frames_bucketed(20), b.ladder_data_cost() / 2,
                         note="global batch 20 = 2 x 10; two processes share the same cores: on 2 cores "
                              "expect little or no gain", processes=2)
    return row


def ddp_worker(spec_path: str) -> None:
    """One torchrun process of ``torch-ddp2``: its half of each global batch; rank 0 writes the timings."""
    import torch
    import torch.distributed as dist

    from ..backends.torch.engine import TorchBackend

    spec = json.loads(Path(spec_path).read_text())
    cfg = Config.from_dict(spec["config"])
    backend = TorchBackend(cfg, "cpu")  # joins the gloo process group (torchrun's environment)
    rank, world = backend.rank, backend.world_size
    backend.set_lr(cfg.train.lr)
    if spec["compile"]:
        backend.net = torch.compile(backend.net, dynamic=True)
    alphabet, pool, seed = Alphabet(cfg.text.blank), spec["pool"], spec["seed"]
    batches = [synthetic_batch(g[rank::world], pool, alphabet, seed) for g in spec["groups"]]
    n = len(spec["groups"][0]) // world
    if spec["compile"]:  # as Bench.warmup_batches: every timed length once
        warm = list({b.features.shape: b for b in batches}.values())
    elif spec["warmup_utterance_s"]:
        warm = [synthetic_batch(list(range(n)), [spec["warmup_utterance_s"]] * n, alphabet, seed + 1)]
        warm *= spec["warmup_steps"]
    else:
        warm = batches[:1] * spec["warmup_steps"]
    t0 = time.perf_counter()
    for batch in warm:
        backend.train_step(batch)
    dist.barrier()
    warmup = time.perf_counter() - t0
    seconds: list[float] = []
    shapes: list[list[int]] = []
    audio, start = 0.0, time.perf_counter()
    while len(seconds) < spec["steps"] or time.perf_counter() - start < spec["min_seconds"]:
        i = len(seconds) % len(batches)
        t = time.perf_counter()
        backend.train_step(batches[i])
        dist.barrier()  # a step ends when both processes have applied it
        seconds.append(time.perf_counter() - t)
        group = spec["groups"][i]
        for r in range(world):  # every process pads its own half
            part = group[r::world]
            shapes.append([len(part), int(max(frames_of(pool[j]) for j in part))])
        audio += float(sum(frames_of(pool[j]) for j in group)) * HOP / SAMPLE_RATE
        if len(seconds) >= 50 * spec["steps"]:
            break
    if rank == 0:
        Path(spec["result"]).write_text(json.dumps({"step_seconds": seconds, "shapes": shapes, "audio_seconds": audio,
                                                    "warmup_seconds": warmup}))
    dist.destroy_process_group()

