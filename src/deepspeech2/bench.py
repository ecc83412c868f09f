"""``ds2 bench``: training throughput and inference speed, as a ladder of setups.

    ds2 bench --quick --out runs/bench            # about 8 minutes on 2 CPU cores (torch-packed-masks left out)
    ds2 bench --rows 'torch-*' --threads 2         # only some rows

Every training row trains one setup for a few steps on the same synthetic utterances
(random 161-bin features, random transcripts of 15 characters per second) and reports
the audio seconds trained per wall second and the hours one epoch of LibriSpeech
train-clean-100 would take. The rows climb from the course's setup (MindSpore, batch 1,
every utterance padded to 15 s) to the fastest one found; from the data-path row on,
each row keeps the best setting of the rows before it (the "ladder"). Inference rows give
the real-time factor of one stream. The results go to ``bench.md``, ``bench.json`` and
``bench.png``; a row that fails reports its error instead of stopping the bench.

How a row is projected to an epoch: a training step costs time in proportion to the
frames the network processes (batch x padded length: convolutions and RNNs run over
every frame), so a row's measured seconds per processed frame times the frames one epoch
processes under that row's batching (fixed padding or length buckets) is the epoch's
time. This keeps ``--quick`` (short utterances) and full runs comparable.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from .config import Config, ModelConfig, load_config
from .data.dataset import Batch, BucketBatchSampler
from .data.manifest import atomic_write_text
from .text import Alphabet

# LibriSpeech train-clean-100: 28,539 utterances, 100.6 h (OpenSLR), mean 12.7 s, max 24.5 s.
EPOCH_HOURS = 100.6
EPOCH_UTTERANCES = 28_539
EPOCH_MIN_S, EPOCH_MAX_S = 1.0, 24.5
OFFICIAL_FRAMES = 1501  # the official recipe pads every utterance to 15 s (1,501 frames of 10 ms)
CHARS_PER_SECOND = 15  # LibriSpeech read speech: about 15 characters per second
MINDSPORE_MISSING = "not run: MindSpore not installed (pip install 'deepspeech2[mindspore]')"
SAMPLE_RATE, HOP = 16000, 160
# torch.compile and bf16 join the ladder only when this much faster: one timed step varies by a few per cent,
# and a compiled ladder makes every later row pay compiling again.
ADOPT_MARGIN = 1.03


# -- the workload ---------------------------------------------------------------------------------------------------

def librispeech100_durations(seed: int = 0) -> np.ndarray:
    """28,539 utterance durations (s) shaped like train-clean-100's: a seeded gamma (shape 16, mean 12.7 s:
    65 % between 10 and 16 s) redrawn outside 1-24.5 s and scaled to exactly 100.6 h."""
    rng = np.random.default_rng(seed)
    shape, mean = 16.0, EPOCH_HOURS * 3600 / EPOCH_UTTERANCES
    d = rng.gamma(shape, mean / shape, EPOCH_UTTERANCES)
    while (bad := (d < EPOCH_MIN_S) | (d > EPOCH_MAX_S)).any():
        d[bad] = rng.gamma(shape, mean / shape, int(bad.sum()))
    d *= EPOCH_HOURS * 3600 / d.sum()
    return np.clip(d, EPOCH_MIN_S, EPOCH_MAX_S)


def frames_of(seconds: float | np.ndarray) -> np.ndarray:
    """Feature frames of audio this long (centred STFT, 10 ms hop), as ``audio.num_frames``."""
    return 1 + (np.round(np.asarray(seconds) * SAMPLE_RATE).astype(np.int64) // HOP)


@dataclass
class Workload:
    """What every row measures on: a pool of utterance durations, step counts and the epoch model."""

    quick: bool
    tiny: bool
    pool: list[float]  # durations (s) of the measured utterances; utterance i is the same in every row
    steps: int  # timed steps per row, at least ...
    min_seconds: float  # ... and timed for at least this long
    warmup_steps: int
    warmup_utterance_s: float  # torch rows warm up on utterances this long (0: on the first timed batch)
    infer_seconds: float  # the inference utterance
    infer_reps: int
    matmul_size: int
    seed: int = 0
    epoch: np.ndarray = field(default_factory=librispeech100_durations)

    @classmethod
    def create(cls, quick: bool, tiny: bool = False, seed: int = 0) -> Workload:
        rng = np.random.default_rng([seed, 1])
        if tiny:  # the test's machinery check: seconds, not minutes
            return cls(quick, tiny, rng.uniform(0.5, 1.0, 20).tolist(), 1, 0.0, 1, 0.3, 2.0, 1, 256, seed)
        if quick:  # short utterances, one step to warm up (oneDNN builds its kernels per shape), one timed
            return cls(quick, tiny, rng.uniform(4.0, 5.0, 20).tolist(), 1, 0.0, 1, 0.0, 10.0, 1, 2048, seed)
        epoch = librispeech100_durations(seed)
        return cls(quick, tiny, rng.choice(epoch, 60, replace=False).tolist(), 3, 60.0, 1, 0.0, 10.0, 3, 4096,
                   seed, epoch)

    @property
    def epoch_audio_s(self) -> float:
        return float(self.epoch.sum())

    def epoch_frames_fixed(self, pad: int, length: Callable[[int], int] = int) -> int:
        """Frames one epoch processes with every utterance padded to ``pad`` (longer ones: their own length)."""
        frames = frames_of(self.epoch)
        return int(sum(max(length(pad), length(int(f))) for f in frames))

    def epoch_frames_bucketed(self, batch_size: int, length: Callable[[int], int] = int) -> int:
        """Frames one epoch processes in length-bucketed batches, each padded to its longest utterance."""
        frames = frames_of(self.epoch).tolist()
        sampler = BucketBatchSampler(frames, batch_size, shuffle=False)
        return int(sum(len(b) * length(max(frames[i] for i in b)) for b in sampler.batches))


def synthetic_batch(indices: list[int], durations: list[float], alphabet: Alphabet, seed: int,
                    pad_to: int = 0) -> Batch:
    """Random features and transcripts for utterances ``indices`` of ``durations``; each utterance's data
    depends only on (seed, index), so every row and process sees the same utterance."""
    frames = [int(frames_of(durations[i])) for i in indices]
    width = max([pad_to, *frames])
    non_blank = [i for i in range(len(alphabet)) if i != alphabet.blank_id]
    features = np.zeros((len(indices), 161, width), dtype=np.float32)
    labels = []
    for row, (i, n) in enumerate(zip(indices, frames, strict=True)):
        rng = np.random.default_rng([seed, 2, i])
        features[row, :, :n] = rng.standard_normal((161, n), dtype=np.float32)
        labels.append(rng.choice(non_blank, max(1, round(CHARS_PER_SECOND * durations[i]))))
    targets = np.zeros((len(labels), max(len(x) for x in labels)), dtype=np.int64)
    for row, lab in zip(targets, labels, strict=True):
        row[: len(lab)] = lab
    return Batch(features, np.array(frames, dtype=np.int64), targets, np.array([len(x) for x in labels]),
                 [""] * len(indices), [f"synthetic-{i}" for i in indices])


# -- FLOPs ----------------------------------------------------------------------------------------------------------

def forward_flops(m: ModelConfig, frames: int, num_bins: int = 161, num_classes: int = 29) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass over an utterance of ``frames`` input frames:
    convolutions, RNN gates (input and recurrent products, both directions), lookahead and fc."""
    flops, channels, freq, t = 0.0, 1, num_bins, frames
    for out, (kf, kt), (sf, st) in zip(m.conv_channels, m.conv_kernels, m.conv_strides, strict=True):
        freq = (freq + 2 * (kf // 2) - kf) // sf + 1
        t = (t + 2 * (kt // 2) - kt) // st + 1
        flops += 2.0 * channels * kf * kt * out * freq * t
        channels = out
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[m.rnn_type]
    directions = 2 if m.bidirectional else 1
    size, h = channels * freq, m.rnn_hidden
    for _ in range(m.rnn_layers):
        flops += directions * t * 2.0 * gates * h * (size + h)
        size = h
    if not m.bidirectional:
        flops += 2.0 * h * (m.lookahead_context + 1) * t
    return flops + 2.0 * h * num_classes * t


def training_flops(m: ModelConfig, batch_frames: list[tuple[int, int]]) -> float:
    """FLOPs of training steps given as (batch size, padded length): backward costs about twice the forward."""
    return sum(3.0 * n * forward_flops(m, t) for n, t in batch_frames)


def matmul_gflops(n: int, dtype_name: str, min_seconds: float = 0.5) -> float:
    """GFLOP/s of an n x n matrix product on torch's default CPU path in ``dtype_name``."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: the library picks its kernel
    reps, start = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - start < min_seconds:
        torch.mm(a, b)
        reps += 1
    return 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e9


# -- results --------------------------------------------------------------------------------------------------------

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
def _class_setting(cls: type, name: str, value: object) -> Iterator[None]:
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
        from .backends.mindspore.engine import bucket_length
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
        from .recipes import config_path

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

        from .backends.base import create_backend

        m = cfg.model
        self.log(f"    torch: {m.rnn_layers} x {m.rnn_type} {m.rnn_hidden}, batch {cfg.train.batch_size}, "
                 f"{cfg.train.threads} thread(s), {cfg.train.precision}{', compiled' * compile_model}")
        from .backends.torch.model import RNNLayer

        with torch_threads(cfg.train.threads), _class_setting(RNNLayer, "use_packed", packed):
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
        from .backends.base import create_backend
        from .backends.mindspore.model import Conv2d

        self.log(f"    mindspore: batch {cfg.train.batch_size}, padded to {batches[0].features.shape[2]} frames"
                 + (", MindSpore's CPU convolution" if native_conv else ""))
        with _class_setting(Conv2d, "native_on_cpu", native_conv):
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

        from .audio import FeatureSpec, load_features, spectrogram
        from .data.features import FeatureCache

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


# -- training rows, from the course's setup to the fastest ----------------------------------------------------------

def _mindspore_fixed(b: Bench, name: str, batch_size: int, native_conv: bool = False) -> RowResult:
    if not mindspore_available():
        raise NotRun(MINDSPORE_MISSING)
    cfg = b.config(batch_size=batch_size, backend="mindspore")
    m = b.measure_mindspore(cfg, b.fixed_batches(cfg, batch_size), native_conv=native_conv)
    frames = b.w.epoch_frames_fixed(OFFICIAL_FRAMES, mindspore_static_length)
    static = mindspore_static_length(OFFICIAL_FRAMES)
    note = "every utterance padded to 1,501 frames" + (f" (the backend's static shape: {static})"
                                                       if static != OFFICIAL_FRAMES else "")
    note += ("; MindSpore's CPU convolution kernel, as the course's code" if native_conv else
             "; this toolkit's convolution (unfold + matmul)")
    return b.train_result(name, SETUPS[name], cfg, m, frames, note=note)


def row_mindspore_course_b1(b: Bench) -> RowResult:
    """The course's setup: the official MindSpore network with MindSpore's own CPU convolution, batch 1,
    every utterance padded to 15 s."""
    return _mindspore_fixed(b, "mindspore-course-b1", 1, native_conv=True)


def row_mindspore_official_b1(b: Bench) -> RowResult:
    """The same recipe on this toolkit's MindSpore backend (its convolution is an unfold and a matmul)."""
    return _mindspore_fixed(b, "mindspore-official-b1", 1)


def row_mindspore_official_b8(b: Bench) -> RowResult:
    """Larger batches: the same, batch 8."""
    return _mindspore_fixed(b, "mindspore-official-b8", 8)


def row_mindspore_bucketed(b: Bench) -> RowResult:
    """Length buckets instead of fixed padding: a batch is padded to its longest utterance (rounded up
    to the backend's static bucket)."""
    if not mindspore_available():
        raise NotRun(MINDSPORE_MISSING)
    cfg = b.config(batch_size=8, backend="mindspore")
    m = b.measure_mindspore(cfg, b.bucketed_batches(cfg, 8))
    frames = b.w.epoch_frames_bucketed(8, mindspore_static_length)
    return b.train_result("mindspore-bucketed", SETUPS["mindspore-bucketed"], cfg, m,
                          frames, note="static shapes: half-octave buckets")


def row_torch_official_b20(b: Bench) -> RowResult:
    """The PyTorch backend at the official size (5 x BiLSTM-1024), batch 20, length buckets."""
    cfg = b.config(threads=b.threads)
    return b.torch_row("torch-official-b20", "PyTorch, official config, batch 20, length buckets", cfg,
                       note="training step only (no data path)")


def row_torch_masks(b: Bench) -> RowResult:
    """Padding masks on (every utterance's output independent of its batch), the default of the
    LibriSpeech recipes: on CPU the RNNs run one direction at a time on oneDNN's LSTM."""
    cfg = b.config(overrides=["model.mask_padding=true"], threads=b.threads)
    return b.torch_row("torch-masks", "+ padding masks (exact per utterance), per-direction oneDNN RNNs", cfg,
                       note="configs/librispeech100.yaml's setting")


def row_torch_packed_masks(b: Bench) -> RowResult:
    """The same masks computed with PyTorch's packed sequences (deepspeech.pytorch's way): on CPU a
    packed LSTM runs step by step in the native kernel."""
    cfg = b.config(overrides=["model.mask_padding=true"], threads=b.threads)
    return b.torch_row("torch-packed-masks", SETUPS["torch-packed-masks"], cfg,
                       packed=True, note="not used: the row above computes the same outputs")


def row_torch_feature_cache(b: Bench) -> RowResult:
    """The data path included: features computed from audio every step vs loaded from the fp16 cache."""
    cfg = b.config(threads=b.threads)
    costs = b.data_path()
    compute, cached = costs["compute_s_per_audio_s"], costs["cached_s_per_audio_s"]
    uncached = b.torch_speed(cfg, data_cost=compute)
    b.ladder.data_path = True
    return b.torch_row(
        "torch-+feature-cache", "+ data path: fp16 features from the cache", cfg, data_cost=cached,
        note=(f"features from audio each step: {uncached:.2f} audio s/s ({1e3 * compute:.1f} ms per audio s); "
              f"cached: {1e3 * cached:.2f} ms per audio s"),
        uncached_audio_per_s=uncached, **costs)


def row_torch_threads(b: Bench) -> RowResult:
    """Thread settings: torch.set_num_threads(1) vs all cores; the faster one stays."""
    results = {n: b.torch_row("torch-threads", f"+ threads: {n}", b.config(threads=n),
                              data_cost=b.ladder_data_cost()) for n in dict.fromkeys([1, b.threads])}
    best = max(results, key=lambda n: results[n].audio_per_s or 0.0)
    b.ladder.threads = best
    row = results[best]
    row.setup = f"+ threads: best of 1 and {b.threads} ({best})" if len(results) > 1 else f"+ threads: {best}"
    row.note = "; ".join(f"{n} thread{'s' * (n > 1)}: {r.audio_per_s:.2f} audio s/s" for n, r in results.items())
    return row


def row_torch_compile(b: Bench) -> RowResult:
    """torch.compile of the model (dynamic shapes); the ladder keeps eager when compiling fails or is slower."""
    cfg = b.ladder_config()
    eager = b.torch_speed(cfg, data_cost=b.ladder_data_cost())
    row = b.torch_row("torch-compile", "+ torch.compile (inductor, dynamic shapes)", cfg, compile_model=True,
                      data_cost=b.ladder_data_cost())
    faster = (row.audio_per_s or 0.0) > ADOPT_MARGIN * eager
    b.ladder.compile = faster
    row.note = (f"eager {eager:.2f} audio s/s" + ("" if faster else ": not faster, the ladder keeps eager")
                + f"; compile + first steps {row.details['warmup_seconds']:.0f} s, and again for every new "
                "utterance length (the conv front end recompiles per length)")
    return row


def row_torch_bf16(b: Bench) -> RowResult:
    """bf16 autocast on CPU; the ladder keeps fp32 when it is slower."""
    base = b.ladder_config()
    bf16 = b.config(threads=b.ladder.threads, precision="bf16")
    before = b.torch_speed(base, b.ladder.compile, data_cost=b.ladder_data_cost())
    row = b.torch_row("torch-bf16", "+ bf16 autocast", bf16, b.ladder.compile, data_cost=b.ladder_data_cost())
    faster = (row.audio_per_s or 0.0) > ADOPT_MARGIN * before
    if faster:
        b.ladder.precision = "bf16"
    row.note = f"fp32 {before:.2f} audio s/s" + ("" if faster else ": not faster, the ladder keeps fp32")
    return row


def _smaller_model(b: Bench, name: str, setup: str, base: str, overrides: list[str]) -> RowResult:
    cfg = b.ladder_config(base, overrides)
    row = b.torch_row(name, setup, cfg, b.ladder.compile, data_cost=b.ladder_data_cost())
    m = cfg.model
    row.note = (f"{m.rnn_layers} x {'Bi' if m.bidirectional else ''}{m.rnn_type.upper()}-{m.rnn_hidden}, "
                f"time stride {m.time_stride}")
    return row


def row_torch_3x1024(b: Bench) -> RowResult:
    """3 BiLSTM layers instead of 5."""
    return _smaller_model(b, "torch-3x1024", "smaller: 3 x BiLSTM-1024", "mindspore_official",
                          ["model.rnn_layers=3"])


def row_torch_gru(b: Bench) -> RowResult:
    """GRU (3 gates) instead of LSTM (4)."""
    return _smaller_model(b, "torch-gru", "smaller: 5 x BiGRU-1024", "mindspore_official", ["model.rnn_type=gru"])


def row_torch_stride3(b: Bench) -> RowResult:
    """Time stride 3 in the first convolution: a third fewer RNN steps than stride 2."""
    return _smaller_model(b, "torch-stride3", "strided: conv time stride 3", "mindspore_official",
                          ["model.conv_strides=[[2,3],[2,1]]"])


def row_torch_mini(b: Bench) -> RowResult:
    """configs/mini.yaml: 3 x BiLSTM-256, stride 3."""
    return _smaller_model(b, "torch-mini", "smaller: configs/mini.yaml", "mini", [])


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
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
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


def _ddp_worker(spec_path: str) -> None:
    """One torchrun process of ``torch-ddp2``: its half of each global batch; rank 0 writes the timings."""
    import torch
    import torch.distributed as dist

    from .backends.torch.engine import TorchBackend

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


# -- inference rows: one stream, batch 1, a 10 s utterance, 1 thread ------------------------------------------------

def _inference_setup(b: Bench):
    """The official-size network in eval mode, a short warm-up batch and the 10 s utterance (memoised)."""
    if "inference" not in b.memo:
        from .backends.torch.model import DeepSpeech2

        cfg = b.config(threads=1)
        alphabet = b.alphabet(cfg)
        model = DeepSpeech2(cfg.model, cfg.audio.n_fft // 2 + 1, len(alphabet)).eval()
        warm = synthetic_batch([0], [1.0], alphabet, b.w.seed + 2)
        utt = synthetic_batch([0], [b.w.infer_seconds], alphabet, b.w.seed + 3)
        b.memo["inference"] = (cfg, model, warm, utt)
    return b.memo["inference"]


def _time_inference(b: Bench, run: Callable[[Batch], object], warm: Batch, utt: Batch) -> float:
    """Compute seconds per audio second (the real-time factor), best of the repetitions."""
    run(warm)
    best = float("inf")
    for _ in range(b.w.infer_reps):
        t0 = time.perf_counter()
        run(utt)
        best = min(best, time.perf_counter() - t0)
    return best / b.w.infer_seconds


def _infer_result(b: Bench, name: str, setup: str, rtf: float, note: str = "", **details) -> RowResult:
    cfg = _inference_setup(b)[0]
    flops = forward_flops(cfg.model, int(frames_of(b.w.infer_seconds)))
    return RowResult(name, setup, kind="infer", batch=1, rtf=rtf, gflops=flops / (rtf * b.w.infer_seconds) / 1e9,
                     note=note, details={"threads": 1, "audio_seconds": b.w.infer_seconds, **details})


def row_infer_torch_eager(b: Bench) -> RowResult:
    import torch

    _, model, warm, utt = _inference_setup(b)

    def run(batch: Batch) -> object:
        with torch.inference_mode():
            return model(torch.from_numpy(batch.features), torch.from_numpy(batch.feature_lengths))

    with torch_threads(1):
        rtf = _time_inference(b, run, warm, utt)
    return _infer_result(b, "infer-torch-eager", "PyTorch eager, fp32", rtf)


def _onnx_export(b: Bench) -> dict:
    """The official-size network exported to ONNX once for both ONNX Runtime rows (memoised)."""
    if "onnx" not in b.memo:
        from .backends.torch.export import export_onnx

        _, model, warm, _ = _inference_setup(b)
        b.memo["onnx"] = export_onnx(model, b.tmp / "model.onnx", warm)
    return b.memo["onnx"]


def _onnxruntime_rtf(b: Bench, path: str | Path) -> float:
    import onnxruntime as ort

    _, _, warm, utt = _inference_setup(b)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: Batch) -> object:
        return session.run(None, {"features": batch.features, "feature_lengths": batch.feature_lengths})

    return _time_inference(b, run, warm, utt)


def row_infer_onnxruntime(b: Bench) -> RowResult:
    report = _onnx_export(b)
    return _infer_result(b, "infer-onnxruntime", "ONNX Runtime (CPU), fp32", _onnxruntime_rtf(b, report["path"]),
                         note=f"exported with backends/torch/export.py ({report['bytes'] / 1e6:.0f} MB)",
                         onnx_bytes=report["bytes"], max_abs_diff=report["max_abs_diff"])


def row_infer_onnxruntime_int8(b: Bench) -> RowResult:
    from .backends.torch.export import quantize_int8

    path = b.tmp / "model-int8.onnx"
    quantize_int8(Path(_onnx_export(b)["path"]), path)  # what `ds2 export --int8` does after the fp32 export
    size = path.stat().st_size
    return _infer_result(b, "infer-onnxruntime-int8", "ONNX Runtime int8 dynamic quantization (LSTM, MatMul)",
                         _onnxruntime_rtf(b, path), note=f"`ds2 export --int8` ({size / 1e6:.0f} MB); WER change: "
                         "`ds2 eval --onnx`", onnx_bytes=size)


def row_infer_int8_dynamic(b: Bench) -> RowResult:
    import torch
    from torch import nn

    _, model, warm, utt = _inference_setup(b)
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)

        def run(batch: Batch) -> object:
            with torch.inference_mode():
                return quantized(torch.from_numpy(batch.features), torch.from_numpy(batch.feature_lengths))

        rtf = _time_inference(b, run, warm, utt)
    # The weights are untrained, so what int8 does to accuracy shows only with a trained model:
    # `ds2 eval --int8` on the mini corpus (README).
    return _infer_result(b, "infer-int8-dynamic", "PyTorch int8 dynamic quantization (LSTM, Linear)", rtf,
                         note="weights 4x smaller; `ds2 transcribe`'s default on CPU; WER change: `ds2 eval --int8`")


TRAINING_ROWS: dict[str, Callable[[Bench], RowResult]] = {
    "mindspore-course-b1": row_mindspore_course_b1,
    "mindspore-official-b1": row_mindspore_official_b1,
    "mindspore-official-b8": row_mindspore_official_b8,
    "mindspore-bucketed": row_mindspore_bucketed,
    "torch-official-b20": row_torch_official_b20,
    "torch-masks": row_torch_masks,
    "torch-packed-masks": row_torch_packed_masks,
    "torch-+feature-cache": row_torch_feature_cache,
    "torch-threads": row_torch_threads,
    "torch-compile": row_torch_compile,
    "torch-bf16": row_torch_bf16,
    "torch-3x1024": row_torch_3x1024,
    "torch-gru": row_torch_gru,
    "torch-stride3": row_torch_stride3,
    "torch-mini": row_torch_mini,
    "torch-ddp2": row_torch_ddp2,
}
INFERENCE_ROWS: dict[str, Callable[[Bench], RowResult]] = {
    "infer-torch-eager": row_infer_torch_eager,
    "infer-onnxruntime": row_infer_onnxruntime,
    "infer-int8-dynamic": row_infer_int8_dynamic,
    "infer-onnxruntime-int8": row_infer_onnxruntime_int8,
}
SETUPS = {  # what a row that did not run would have measured
    "mindspore-course-b1": "MindSpore, the course's code (MindSpore's CPU convolution), batch 1, fixed padding",
    "mindspore-official-b1": "MindSpore backend, official config, batch 1, fixed padding",
    "mindspore-official-b8": "MindSpore backend, official config, batch 8, fixed padding",
    "mindspore-bucketed": "MindSpore backend, official config, batch 8, length buckets",
    "torch-packed-masks": "padding masks via packed sequences (as deepspeech.pytorch)",
}
# Rows that --quick leaves out unless --rows names them: slow, and no later row depends on them.
FULL_RUN_ONLY = {"torch-packed-masks": "one step takes over a minute on 2 cores"}


def select_rows(patterns: str | list[str] | None) -> list[str]:
    """Row names matching comma-separated names or globs (``torch-*``), in ladder order; all for None."""
    names = [*TRAINING_ROWS, *INFERENCE_ROWS]
    if not patterns:
        return names
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    unknown = [p for p in patterns if not any(fnmatch(n, p) for n in names)]
    if unknown:
        raise ValueError(f"--rows: no row matches {', '.join(unknown)}; rows are: {', '.join(names)}")
    return [n for n in names if any(fnmatch(n, p) for p in patterns)]


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


# -- running and reporting ------------------------------------------------------------------------------------------

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
    fn = TRAINING_ROWS.get(name) or INFERENCE_ROWS[name]
    kind = "train" if name in TRAINING_ROWS else "infer"
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


def add_speedups(rows: list[RowResult]) -> None:
    """Each row's ratio to the first row of its table that ran (throughput, or 1 / RTF)."""
    def speed(r: RowResult) -> float | None:
        return r.audio_per_s if r.kind == "train" else (1.0 / r.rtf if r.rtf else None)

    base = next((speed(r) for r in rows if r.status == "ok" and speed(r)), None)
    for r in rows:
        s = speed(r)
        r.speedup = s / base if (base and s and r.status == "ok") else None


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _status_note(r: RowResult) -> str:
    if r.status == "failed":
        return f"failed: {r.error}"
    return r.note


def markdown_report(report: dict) -> str:
    m, w = report["machine"], report["workload"]
    train = [RowResult(**r) for r in report["training"]]
    infer = [RowResult(**r) for r in report["inference"]]
    out = [f"# ds2 bench{' --quick' if w['quick'] else ''}{' (tiny model)' if w['tiny'] else ''}", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} thread(s); "
           f"{m['matmul_size']}² matmul: fp32 {m['matmul_fp32_gflops']:.0f} GFLOP/s, "
           f"bf16 {m['matmul_bf16_gflops']:.0f} GFLOP/s.", "",
           f"Epoch: train-clean-100 modelled as {w['epoch_utterances']:,} utterances, {w['epoch_hours']:.1f} h "
           f"(mean {w['epoch_mean_s']:.1f} s, {100 * w['epoch_10_16_fraction']:.0f} % between 10 and 16 s, "
           f"max {w['epoch_max_s']:.1f} s). Measured on {w['pool_utterances']} synthetic utterances of "
           f"{w['pool_min_s']:.1f}-{w['pool_max_s']:.1f} s, {w['steps']} timed step(s) per row after "
           f"{w['warmup_steps']} warm-up step(s).", ""]
    if train:
        base = next((r.name for r in train if r.speedup), "—")
        out += ["## Training", "",
                f"audio s/s: audio seconds trained per wall second over one epoch; speedup vs {base}.", "",
                "| # | row | setup | batch | audio s/s | epoch (h) | speedup | GFLOP/s | WER | notes |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(train, 1):
            wer = "not measured" if r.wer is None else f"{100 * r.wer:.1f} %"
            out.append(f"| {i} | {r.name} | {_md(r.setup)} | {r.batch or '—'} | {_cell(r.audio_per_s, '.2f')} | "
                       f"{_cell(r.epoch_hours, '.1f')} | {_cell(r.speedup, '.2f')}{'×' * bool(r.speedup)} | "
                       f"{_cell(r.gflops, '.0f')} | {wer} | {_md(_status_note(r))} |")
        out.append("")
    if infer:
        out += [f"## Inference: one stream, batch 1, a {w['infer_seconds']:.0f} s utterance, 1 thread", "",
                "RTF: compute seconds per audio second (below 1 is faster than real time).", "",
                "| row | engine | RTF | × real time | speedup | GFLOP/s | notes |", "|---|---|---|---|---|---|---|"]
        for r in infer:
            out.append(f"| {r.name} | {_md(r.setup)} | {_cell(r.rtf, '.3f')} | "
                       f"{_cell(1 / r.rtf if r.rtf else None, '.1f')} | {_cell(r.speedup, '.2f')}"
                       f"{'×' * bool(r.speedup)} | {_cell(r.gflops, '.0f')} | {_md(_status_note(r))} |")
        out.append("")
    out += targets_report(report)
    ladder = report["ladder"]
    out.append(f"Ladder's final settings: {ladder['threads']} thread(s), "
               f"{'torch.compile' if ladder['compile'] else 'eager'}, {ladder['precision']}, "
               f"{'cached features' if ladder['data_path'] else 'no data path'}.")
    return "\n".join(out) + "\n"


# Rows that train the official-size network (5 x BiLSTM-1024, time stride 2) with the PyTorch backend.
OFFICIAL_SIZE_ROWS = ("torch-official-b20", "torch-masks", "torch-+feature-cache", "torch-threads", "torch-compile",
                      "torch-bf16", "torch-ddp2")
TARGETS = {"official_audio_per_s": 13.0, "official_speedup": 20.0, "official_epoch_h": 8.0, "fast_epoch_h": 1.0,
           "fast_wer_points": 2.0, "rtf": 0.05}


def targets_report(report: dict) -> list[str]:
    """The project's speed targets against this run's rows, each met or with the measured gap and its cause."""
    m, t = report["machine"], TARGETS
    train = {r["name"]: RowResult(**r) for r in report["training"] if r["status"] == "ok" and r["audio_per_s"]}
    infer = [RowResult(**r) for r in report["inference"] if r["status"] == "ok" and r["rtf"]]
    lines = ["## Targets", ""]
    official = [train[n] for n in OFFICIAL_SIZE_ROWS if n in train]
    if official:
        best = max(official, key=lambda r: r.audio_per_s or 0.0)
        base = train.get("mindspore-course-b1") or train.get("mindspore-official-b1")
        ratio = best.audio_per_s / base.audio_per_s if base and best.audio_per_s and base.audio_per_s else None
        gflop_per_audio_s = (best.gflops or 0.0) / (best.details.get("measured_audio_per_s") or best.audio_per_s)
        speed_met = best.audio_per_s >= t["official_audio_per_s"]
        ratio_met = (ratio or 0.0) >= t["official_speedup"]
        needs = [f"{t['official_audio_per_s']:.0f} audio s/s needs "
                 f"{t['official_audio_per_s'] * gflop_per_audio_s:.0f} GFLOP/s"] if not speed_met else []
        if base and not ratio_met:
            needs.append(f"×{t['official_speedup']:.0f} needs "
                         f"{t['official_speedup'] * base.audio_per_s * gflop_per_audio_s:.0f}")
        cause = ("" if not needs else
                 f" Cause: one audio second costs {gflop_per_audio_s:.0f} GFLOP to train at this size, so "
                 + " and ".join(needs) + f"; the best row runs at {best.gflops:.0f} GFLOP/s against this machine's "
                 f"matmul rates of {m['matmul_fp32_gflops']:.0f} (fp32) and {m['matmul_bf16_gflops']:.0f} (bf16) "
                 "GFLOP/s; the LSTMs, most of the work, run on oneDNN's fp32 kernel near its ceiling, and bf16 "
                 + (f"autocast trains at {train['torch-bf16'].audio_per_s:.2f} audio s/s (row torch-bf16)"
                    if "torch-bf16" in train else "was not measured (row torch-bf16)") + ".")
        verdict = (f"≥ {t['official_audio_per_s']:.0f} audio s/s: " + ("met" if speed_met else "not met")
                   + f"; ×{t['official_speedup']:.0f}: "
                   + (("met" if ratio_met else "not met") if ratio else "course's setup not measured"))
        lines.append(f"- Official size, PyTorch: {best.audio_per_s:.2f} audio s/s ({best.name})"
                     + (f", ×{ratio:.1f} {base.name}" if ratio and base else "")
                     + f" (targets {verdict})." + cause)
        hours_met = (best.epoch_hours or 99.0) <= t["official_epoch_h"]
        lines.append(f"- Official-size epoch of train-clean-100: {best.epoch_hours:.1f} h (target ≤ "
                     f"{t['official_epoch_h']:.0f} h): " + ("met." if hours_met else "not met (as above)."))
    fastest = min(train.values(), key=lambda r: r.epoch_hours or 1e9, default=None)
    if fastest is not None:
        official_wer = next((r.wer for r in official if r.wer is not None), None)
        fast_enough = (fastest.epoch_hours or 99.0) <= t["fast_epoch_h"]
        if fastest.wer is None or official_wer is None:
            accuracy = "its WER against the official size's not measured (--wer-json)" + (
                "" if fast_enough else ": not met")
        else:
            points = round(100 * (fastest.wer - official_wer), 1)  # judged as printed
            met = fast_enough and points <= t["fast_wer_points"]
            accuracy = (f"WER {100 * fastest.wer:.1f} % vs {100 * official_wer:.1f} % at the official size "
                        f"({points:+.1f} points): " + ("met" if met else "not met"))
        lines.append(f"- Fastest configuration: {fastest.name}, {fastest.epoch_hours:.2f} h per epoch (target ≤ "
                     f"{t['fast_epoch_h']:.0f} h within {t['fast_wer_points']:.0f} WER points); {accuracy}.")
    if infer:
        best_infer = min(infer, key=lambda r: r.rtf or 1e9)
        met = (best_infer.rtf or 1.0) <= t["rtf"]
        # three significant digits: 0.0501 is not met, and must not print as 0.050
        lines.append(f"- Inference at the official size, one core: RTF {best_infer.rtf:#.3g} ({best_infer.name}, "
                     f"target ≤ {t['rtf']}): " + ("met." if met else
                                                 f"not met: {best_infer.gflops:.0f} GFLOP/s on one core, and "
                                                 "the LSTMs' step-by-step recurrence bounds it."))
    return [*lines, ""] if len(lines) > 2 else []


def plot_report(report: dict, path: Path) -> None:
    """Bar charts: training throughput (epoch hours on the bars) and inference × real time."""
    from .plots import _pyplot

    plt = _pyplot()
    train = [RowResult(**r) for r in report["training"]]
    infer = [RowResult(**r) for r in report["inference"]]
    panels = [(rows, title) for rows, title in ((train, "training: audio s / wall s (one epoch of train-clean-100)"),
                                                 (infer, "inference: × real time (batch 1, 1 thread)")) if rows]
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(10, 1.2 + 0.45 * sum(len(p[0]) for p in panels) + 1),
                             squeeze=False, gridspec_kw={"height_ratios": [max(1, len(p[0])) for p in panels] or [1]})
    for ax, (rows, title) in zip(axes[:, 0], panels, strict=False):
        values = [(r.audio_per_s if r.kind == "train" else (1 / r.rtf if r.rtf else None)) for r in rows]
        y = np.arange(len(rows))[::-1]
        shown = [v or 0.0 for v in values]
        colors = ["tab:orange" if r.name.startswith("mindspore") else "tab:blue" for r in rows]
        ax.barh(y, shown, color=colors)
        ax.set_yticks(y, [r.name for r in rows])
        positive = [v for v in values if v]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
        for yi, r, v in zip(y, rows, values, strict=True):
            if not v:
                x = min(positive) if positive and ax.get_xscale() == "log" else 0
                ax.text(x, yi, f" {r.status if r.status != 'ok' else '—'}", va="center", color="gray", fontsize=8)
            elif r.kind == "train":
                ax.text(v, yi, f" {v:.2f} ({r.epoch_hours:.1f} h/epoch)", va="center", fontsize=8)
            else:
                ax.text(v, yi, f" {v:.1f}× (RTF {r.rtf:.3f})", va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.25)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _summary_line(i: int, total: int, r: RowResult, seconds: float) -> str:
    if r.status != "ok":
        value = r.status + (f": {r.error}" if r.error else f" ({r.note})" if r.note else "")
    elif r.kind == "train":
        value = f"{r.audio_per_s:8.2f} audio s/s  epoch {r.epoch_hours:7.1f} h  {r.gflops:6.0f} GFLOP/s"
    else:
        value = f"RTF {r.rtf:.3f} ({1 / r.rtf:.1f}× real time)"
    return f"[{i:2d}/{total}] {r.name:22s} {value}  ({seconds:.0f} s)"


def run_bench(out_dir: str | Path, quick: bool = False, rows: str | list[str] | None = None,
              threads: int | None = None, wer_json: str | Path | None = None, tiny: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run the selected rows and write bench.md, bench.json and bench.png to ``out_dir``; returns the report."""
    import shutil

    import torch

    names = select_rows(rows)
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
            skip = (f"left out of --quick ({FULL_RUN_ONLY[name]}); ds2 bench --quick --rows {name} times it"
                    if quick and not rows and name in FULL_RUN_ONLY else "")
            results.append(run_row(b, name, skip))
            log(_summary_line(i, len(names), results[-1], time.perf_counter() - t0))
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    train = [r for r in results if r.kind == "train"]
    infer = [r for r in results if r.kind == "infer"]
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
    }
    text = markdown_report(report)
    atomic_write_text(out / "bench.md", text)
    atomic_write_text(out / "bench.json", json.dumps(report, indent=2) + "\n")
    plot_report(report, out / "bench.png")
    log("\n" + text)
    log(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'} "
        f"in {report['workload']['seconds']:.0f} s")
    return report


if __name__ == "__main__":  # torchrun ... -m deepspeech2.bench --ddp-worker SPEC (the torch-ddp2 row)
    if len(sys.argv) == 3 and sys.argv[1] == "--ddp-worker":
        _ddp_worker(sys.argv[2])
    else:
        from .cli import main

        sys.exit(main(["bench", *sys.argv[1:]]))
