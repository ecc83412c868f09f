"""The bench's machinery: results, the ladder of best settings, and ``Bench`` (configs, synthetic batches,
timed train steps of each backend, the data path's cost, projection of a measurement to one epoch)."""

from __future__ import annotations

import contextlib
import gc
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, config_path, load_config
from ..data.dataset import Batch
from ..text import Alphabet
from .flops import training_flops
from .workload import HOP, OFFICIAL_FRAMES, SAMPLE_RATE, Workload, frames_of, synthetic_batch

MINDSPORE_MISSING = "not run: MindSpore not installed (pip install 'deepspeech2[mindspore]')"
# torch.compile and bf16 join the ladder only when this much faster: one timed step varies by a few per cent,
# and a compiled ladder makes every later row pay compiling again.
ADOPT_MARGIN = 1.03


class NotRun(Exception):
    """A row that cannot run here (the message says why); reported, not an error."""


@dataclass
class Measurement:
    """Timed training steps of one setup."""

    step_seconds: list[float]
    audio_seconds: float  # real audio in the timed steps
    padded_frames: int  # batch size x padded length, summed over the timed steps
    flops: float  # training FLOPs of the timed steps
    warmup_seconds: float
    skipped: int = 0

    @property
    def seconds(self) -> float:
        return float(sum(self.step_seconds))

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.padded_frames

    def audio_per_second(self) -> float:
        return self.audio_seconds / self.seconds


@dataclass
class RowResult:
    name: str
    setup: str
    kind: str = "train"  # train | infer
    status: str = "ok"  # ok | not run | failed
    batch: int | None = None
    audio_per_s: float | None = None  # train: epoch audio seconds per wall second
    epoch_hours: float | None = None  # train: projected hours for one train-clean-100 epoch
    rtf: float | None = None  # infer: compute seconds per audio second
    gflops: float | None = None
    speedup: float | None = None  # vs the first row of its table that ran
    wer: float | None = None
    note: str = ""
    error: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class Ladder:
    """The best settings so far, which the later torch rows build on."""

    threads: int
    compile: bool = False
    precision: str = "fp32"
    data_path: bool = False  # include the cached feature load (seconds per audio second) in the throughput


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def class_setting(cls: type, name: str, value: object) -> Iterator[None]:
    """A layer class's switch (read when a layer is built or run) set for one row, then put back."""
    saved = getattr(cls, name)
    setattr(cls, name, value)
    try:
        yield
    finally:
        setattr(cls, name, saved)


def mindspore_available() -> bool:
    try:
        import mindspore  # noqa: F401
    except ImportError:
        return False
    return True


def mindspore_static_length(frames: int) -> int:
    """The length the MindSpore backend pads a training batch to (its graphs have static shapes)."""
    try:
        from ..backends.mindspore.engine import bucket_length
    except ImportError:
        return frames
    return bucket_length(frames)


# -- the bench: configs, measurements, projections ------------------------------------------------------------------

class Bench:
    """Shared state of one run: workload, measurements (memoised: rows reuse each other's), the ladder."""

    def __init__(self, workload: Workload, threads: int, wer: dict[str, float], log: Callable[[str], None]):
        self.w = workload
        self.threads = threads
        self.wer = wer
        self.log = log
        self.ladder = Ladder(threads=threads)
        self.memo: dict = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="ds2-bench-"))

    # configs
    def config(self, base: str = "mindspore_official", overrides: list[str] | None = None, batch_size: int = 20,
               threads: int | None = None, precision: str = "fp32", backend: str = "torch") -> Config:
        cfg = load_config(config_path(base), overrides)
        if self.w.tiny:  # the same rows with a model small enough for the test
            layers = 2 if cfg.model.rnn_layers >= 5 else 1
            cfg.model.rnn_hidden, cfg.model.rnn_layers = 32, layers
            cfg.model.conv_channels = [4] * len(cfg.model.conv_channels)
        cfg.backend = backend
        cfg.train.batch_size, cfg.train.device, cfg.train.precision = batch_size, "cpu", precision
        cfg.train.threads = threads or self.threads
        return cfg

    def alphabet(self, cfg: Config) -> Alphabet:
        return Alphabet(cfg.text.blank)

    # batches
    def fixed_batches(self, cfg: Config, batch_size: int) -> list[Batch]:
        """The pool in its (random) order, every utterance padded to 1,501 frames; longer than 15 s left out,
        as the course's data preparation does."""
        usable = [i for i, d in enumerate(self.w.pool) if frames_of(d) <= OFFICIAL_FRAMES]
        groups = [usable[i: i + batch_size] for i in range(0, len(usable), batch_size)][: self.w.steps]
        return [synthetic_batch(g, self.w.pool, self.alphabet(cfg), self.w.seed, OFFICIAL_FRAMES) for g in groups]

    def bucketed_indices(self, batch_size: int) -> list[list[int]]:
        order = np.argsort(self.w.pool, kind="stable").tolist()
        groups = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
        return [g for g in groups if len(g) == batch_size][: self.w.steps] or [order[:batch_size]]

    def bucketed_batches(self, cfg: Config, batch_size: int) -> list[Batch]:
        return [synthetic_batch(g, self.w.pool, self.alphabet(cfg), self.w.seed)
                for g in self.bucketed_indices(batch_size)]

    def warmup_batches(self, cfg: Config, timed: list[Batch], compiled: bool = False) -> list[Batch]:
        """Eager: a step or two on short utterances (allocations, kernel choice). Compiled: every timed
        length once, since a new length recompiles (the conv front end's guards specialise on it), which a
        long run pays once per length, not per step."""
        if compiled:
            return list({b.features.shape: b for b in timed}.values())
        if not self.w.warmup_utterance_s:
            return timed[:1] * self.w.warmup_steps
        n = len(timed[0])
        return [synthetic_batch(list(range(n)), [self.w.warmup_utterance_s] * n, self.alphabet(cfg),
                                self.w.seed + 1)] * self.w.warmup_steps

    # measurement
    def timed(self, step: Callable[[Batch], float | None], batches: list[Batch], cfg: Config,
              length: Callable[[int], int] = int) -> Measurement:
        """Run ``step`` over ``batches`` (cycling) for at least ``steps`` steps and ``min_seconds``."""
        seconds, audio, frames, shapes, skipped = [], 0.0, 0, [], 0
        start = time.perf_counter()
        while len(seconds) < self.w.steps or time.perf_counter() - start < self.w.min_seconds:
            batch = batches[len(seconds) % len(batches)]
            t0 = time.perf_counter()
            skipped += step(batch) is None
            seconds.append(time.perf_counter() - t0)
            padded = length(batch.features.shape[2])
            audio += float(batch.feature_lengths.sum()) * HOP / SAMPLE_RATE
            frames += len(batch) * padded
            shapes.append((len(batch), padded))
            if len(seconds) >= 50 * self.w.steps:
                break
        return Measurement(seconds, audio, frames, training_flops(cfg.model, shapes), 0.0, skipped)

    def measure_torch(self, cfg: Config, compile_model: bool = False, packed: bool = False) -> Measurement:
        """Warm up, then time the torch backend's train step on the bucketed pool (memoised per setup).
        ``packed``: masked RNNs on PyTorch's packed sequences instead of the per-direction CPU path."""
        key = ("torch", json.dumps(cfg.to_dict(), sort_keys=True), compile_model, packed)
        if key in self.memo:
            return self.memo[key]
        import torch

        from ..backends.base import create_backend

        m = cfg.model
        self.log(f"    torch: {m.rnn_layers} x {m.rnn_type} {m.rnn_hidden}, batch {cfg.train.batch_size}, "
                 f"{cfg.train.threads} thread(s), {cfg.train.precision}{', compiled' * compile_model}")
        from ..backends.torch.model import RNNLayer

        with torch_threads(cfg.train.threads), class_setting(RNNLayer, "use_packed", packed):
            backend = create_backend(cfg, "cpu")
            backend.set_lr(cfg.train.lr)
            if compile_model:
                # dynamic=True: one graph for every utterance length, not one compile per length.
                backend.net = torch.compile(backend.model, dynamic=True)
            batches = self.bucketed_batches(cfg, cfg.train.batch_size)
            t0 = time.perf_counter()
            # The packed path's native kernel prepares nothing per shape, and its step is slow: no warm-up.
            for batch in [] if packed else self.warmup_batches(cfg, batches, compile_model):
                backend.train_step(batch)
            warmup = time.perf_counter() - t0
            m = self.timed(backend.train_step, batches, cfg)
        m.warmup_seconds = warmup
        del backend
        gc.collect()
        if m.skipped:  # a skipped step does no backward pass: its time would flatter the row
            raise RuntimeError(f"{m.skipped} of {len(m.step_seconds)} timed steps had a non-finite loss")
        self.memo[key] = m
        return m

    def measure_mindspore(self, cfg: Config, batches: list[Batch], native_conv: bool = False) -> Measurement:
        """The MindSpore backend's train step; every static shape is compiled (warmed up) before timing.
        ``native_conv``: MindSpore's own CPU convolution, as the course's code, instead of the backend's."""
        from ..backends.base import create_backend
        from ..backends.mindspore.model import Conv2d

        self.log(f"    mindspore: batch {cfg.train.batch_size}, padded to {batches[0].features.shape[2]} frames"
                 + (", MindSpore's CPU convolution" if native_conv else ""))
        with class_setting(Conv2d, "native_on_cpu", native_conv):
            backend = create_backend(cfg, "cpu")
        backend.set_lr(cfg.train.lr)
        seen, t0 = set(), time.perf_counter()
        for batch in batches:  # a real epoch compiles each bucket's graph once: leave compiling out
            shape = (len(batch), mindspore_static_length(batch.features.shape[2]))
            if shape not in seen:
                seen.add(shape)
                backend.train_step(batch)
        warmup = time.perf_counter() - t0
        m = self.timed(backend.train_step, batches, cfg, mindspore_static_length)
        m.warmup_seconds = warmup
        del backend
        gc.collect()
        return m

    def data_path(self) -> dict[str, float]:
        """Seconds per audio second of the data path: features computed from audio (WAV decode + spectrogram;
        the spectrogram alone too) and features loaded from the fp16 FeatureCache, each copied into a float32
        batch row as ``SpeechDataset.batch`` does. Best of three passes: these are milliseconds."""
        if "data_path" in self.memo:
            return self.memo["data_path"]
        import soundfile as sf

        from ..audio import FeatureSpec, load_features, spectrogram
        from ..data.features import FeatureCache

        spec, rng = FeatureSpec(), np.random.default_rng([self.w.seed, 3])
        clips = [(0.1 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in self.w.pool[:3]]
        audio = sum(len(c) for c in clips) / SAMPLE_RATE
        paths = []
        for i, clip in enumerate(clips):
            paths.append(str(self.tmp / f"utt{i}.wav"))
            sf.write(paths[-1], clip, SAMPLE_RATE)

        def seconds_per_audio_second(load: Callable[[int], np.ndarray]) -> float:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for i in range(len(clips)):
                    features = load(i)
                    row = np.zeros((features.shape[0], features.shape[1] + 100), dtype=np.float32)
                    row[:, : features.shape[1]] = features
                best = min(best, time.perf_counter() - t0)
            return best / audio

        # No in-memory copies: each load reads the .npy file (from the OS page cache, as in training).
        cache = FeatureCache(self.tmp / "features", spec, in_memory_limit_gb=0)
        cache.ensure(paths, jobs=1, desc="bench features")
        self.memo["data_path"] = {
            "compute_s_per_audio_s": seconds_per_audio_second(lambda i: load_features(paths[i], spec)),
            "spectrogram_s_per_audio_s": seconds_per_audio_second(lambda i: spectrogram(clips[i], spec)),
            "cached_s_per_audio_s": seconds_per_audio_second(lambda i: cache.load(paths[i])),
        }
        return self.memo["data_path"]

    # projection
    def train_result(self, name: str, setup: str, cfg: Config, m: Measurement, epoch_frames: int,
                     data_s_per_audio_s: float = 0.0, note: str = "", **details) -> RowResult:
        """Project a measurement to one epoch: seconds per processed frame x the epoch's processed frames,
        plus the data path's seconds per audio second x the epoch's audio."""
        epoch_s = m.seconds_per_frame * epoch_frames + data_s_per_audio_s * self.w.epoch_audio_s
        return RowResult(
            name, setup, batch=cfg.train.batch_size, audio_per_s=self.w.epoch_audio_s / epoch_s,
            epoch_hours=epoch_s / 3600, gflops=m.flops / m.seconds / 1e9, wer=self.wer.get(name), note=note,
            details={"measured_steps": len(m.step_seconds), "step_seconds": [round(s, 3) for s in m.step_seconds],
                     "measured_audio_per_s": m.audio_per_second(), "warmup_seconds": round(m.warmup_seconds, 2),
                     "seconds_per_frame": m.seconds_per_frame, "epoch_frames": epoch_frames,
                     "data_s_per_audio_s": data_s_per_audio_s, "threads": cfg.train.threads,
                     "precision": cfg.train.precision, **details})

    def ladder_config(self, base: str = "mindspore_official", overrides: list[str] | None = None) -> Config:
        return self.config(base, overrides, threads=self.ladder.threads, precision=self.ladder.precision)

    def ladder_data_cost(self) -> float:
        return self.data_path()["cached_s_per_audio_s"] if self.ladder.data_path else 0.0

    def torch_row(self, name: str, setup: str, cfg: Config, compile_model: bool = False, note: str = "",
                  data_cost: float = 0.0, packed: bool = False, **details) -> RowResult:
        m = self.measure_torch(cfg, compile_model, packed)
        epoch_frames = self.w.epoch_frames_bucketed(cfg.train.batch_size)
        return self.train_result(name, setup, cfg, m, epoch_frames, data_cost, note, compiled=compile_model,
                                 **details)

    def torch_speed(self, cfg: Config, compile_model: bool = False, data_cost: float = 0.0) -> float:
        """Epoch audio seconds per wall second of a torch setup (measured once, then from the memo)."""
        return self.torch_row("", "", cfg, compile_model, data_cost=data_cost).audio_per_s or 0.0



SETUPS = {  # what a row that did not run would have measured
    "mindspore-course-b1": "MindSpore, the course's code (MindSpore's CPU convolution), batch 1, fixed padding",
    "mindspore-official-b1": "MindSpore backend, official config, batch 1, fixed padding",
    "mindspore-official-b8": "MindSpore backend, official config, batch 8, fixed padding",
    "mindspore-bucketed": "MindSpore backend, official config, batch 8, length buckets",
    "torch-packed-masks": "padding masks via packed sequences (as deepspeech.pytorch)",
}
