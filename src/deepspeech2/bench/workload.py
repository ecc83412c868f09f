"""The bench's workload: utterance durations shaped like LibriSpeech train-clean-100, the timed pool, and
synthetic batches (random 161-bin features, random transcripts of 15 characters per second)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import Batch, BucketBatchSampler
from ..text import Alphabet

# LibriSpeech train-clean-100: 28,539 utterances, 100.6 h (OpenSLR), mean 12.7 s, max 24.5 s.
EPOCH_HOURS = 100.6
EPOCH_UTTERANCES = 28_539
EPOCH_MIN_S, EPOCH_MAX_S = 1.0, 24.5
OFFICIAL_FRAMES = 1501  # the official recipe pads every utterance to 15 s (1,501 frames of 10 ms)
CHARS_PER_SECOND = 15  # LibriSpeech read speech: about 15 characters per second
SAMPLE_RATE, HOP = 16000, 160


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
                    pad_to: int = 0, num_bins: int = 161) -> Batch:
    """Random features and transcripts for utterances ``indices`` of ``durations``; each utterance's data
    depends only on (seed, index), so every row and process sees the same utterance."""
    frames = [int(frames_of(durations[i])) for i in indices]
    width = max([pad_to, *frames])
    non_blank = [i for i in range(len(alphabet)) if i != alphabet.blank_id]
    features = np.zeros((len(indices), num_bins, width), dtype=np.float32)
    labels = []
    for row, (i, n) in enumerate(zip(indices, frames, strict=True)):
        rng = np.random.default_rng([seed, 2, i])
        features[row, :, :n] = rng.standard_normal((num_bins, n), dtype=np.float32)
        labels.append(rng.choice(non_blank, max(1, round(CHARS_PER_SECOND * durations[i]))))
    targets = np.zeros((len(labels), max(len(x) for x in labels)), dtype=np.int64)
    for row, lab in zip(targets, labels, strict=True):
        row[: len(lab)] = lab
    return Batch(features, np.array(frames, dtype=np.int64), targets, np.array([len(x) for x in labels]),
                 [""] * len(indices), [f"synthetic-{i}" for i in indices])

