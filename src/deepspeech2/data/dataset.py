"""From a manifest to padded numpy batches: validation, skipping and bucketing.

Every utterance that cannot be used (unreadable or empty audio, empty transcript,
characters outside the alphabet, longer than the configured maximum, too short for
its transcript) is skipped with a message naming the manifest line and the file, and
listed in a report, so a bad file never stops a run in the middle of an epoch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..audio import AudioError
from ..config import Config
from ..text import Alphabet, normalize_text
from .augment import Augmenter
from .features import FeatureCache
from .formats import read_any_manifest
from .manifest import Utterance


@dataclass
class SkipReport:
    items: list[dict] = field(default_factory=list)
    quiet: bool = False

    def add(self, manifest: str, line: int, path: str, reason: str) -> None:
        reason = reason.removeprefix(f"{path}: ")
        self.items.append({"manifest": manifest, "line": line, "path": path, "reason": reason})
        if self.quiet:
            return
        if len(self.items) <= 20:
            print(f"skipped {manifest}:{line} {path}: {reason}", file=sys.stderr)
        elif len(self.items) == 21:
            print("skipped more utterances; see the report", file=sys.stderr)

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, "".join(json.dumps(item) + "\n" for item in self.items))


@dataclass
class Batch:
    features: np.ndarray  # (B, bins, T) float32, zero-padded
    feature_lengths: np.ndarray  # (B,) int64
    targets: np.ndarray  # (B, L) int64, padded with 0
    target_lengths: np.ndarray  # (B,) int64
    texts: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.texts)


class SpeechDataset:
    """Utterances that passed validation, with features from the cache."""

    def __init__(self, utterances: list[Utterance], labels: list[list[int]], frames: list[int],
                 cache: FeatureCache):
        self.utterances = utterances
        self.labels = labels
        self.frames = frames
        self.cache = cache

    def __len__(self) -> int:
        return len(self.utterances)

    def batch(self, indices: list[int], augmenter: Augmenter | None = None,
              rng: np.random.Generator | None = None, min_frames: Callable[[int], int] | None = None) -> Batch:
        """Padded batch of ``indices``; with ``augmenter`` (training only) each utterance is
        augmented with ``rng``. ``min_frames(labels)``: output frames the model needs for an
        utterance (an augmented one that became too short falls back to its cached features)."""
        feats = [self.cache.load(self.utterances[i].path) for i in indices]
        if augmenter is not None:
            rng = rng if rng is not None else np.random.default_rng()
            augmented = []
            for i, cached in zip(indices, feats, strict=True):
                try:
                    f = augmenter.features(self.utterances[i].path, cached, rng)
                except AudioError:  # it featurised once; a file changed since then keeps its cached copy
                    f = augmenter.augment_features(cached, rng)
                if min_frames is not None and f.shape[1] != cached.shape[1] and min_frames(f.shape[1]) < \
                        ctc_min_frames(self.labels[i]):
                    f = augmenter.augment_features(cached, rng)
                augmented.append(f)
            feats = augmented
        bins, max_t = feats[0].shape[0], max(f.shape[1] for f in feats)
        features = np.zeros((len(feats), bins, max_t), dtype=np.float32)
        for row, f in zip(features, feats, strict=False):
            row[:, : f.shape[1]] = f
        labels = [self.labels[i] for i in indices]
        targets = np.zeros((len(labels), max(1, max(len(x) for x in labels))), dtype=np.int64)
        for row, lab in zip(targets, labels, strict=False):
            row[: len(lab)] = lab
        return Batch(features, np.array([f.shape[1] for f in feats], dtype=np.int64), targets,
                     np.array([len(x) for x in labels], dtype=np.int64),
                     [self.utterances[i].text for i in indices], [self.utterances[i].path for i in indices])


def ctc_min_frames(labels: list[int]) -> int:
    """Frames CTC needs: one per label plus a blank between repeated labels."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:], strict=False) if a == b)


def load_dataset(manifest: str | Path, cfg: Config, cache: FeatureCache, report: SkipReport,
                 training: bool = False, jobs: int = 0) -> SpeechDataset:
    """Read, validate and featurise a manifest; unusable utterances go to ``report``."""
    alphabet = Alphabet(cfg.text.blank)
    manifest = str(manifest)
    utterances = read_any_manifest(manifest)
    kept: list[tuple[int, Utterance, list[int]]] = []
    for index, utt in enumerate(utterances, 1):
        line = utt.line or index  # the file's line: blank lines and a CSV header count
        try:
            text = normalize_text(utt.text, cfg.text.spell_numbers)
        except ValueError as e:
            report.add(manifest, line, utt.path, f"transcript: {e}")
            continue
        if not text:
            report.add(manifest, line, utt.path, "empty transcript")
            continue
        if training and utt.duration and utt.duration > cfg.data.max_duration:
            report.add(manifest, line, utt.path,
                       f"{utt.duration:.2f} s is longer than data.max_duration={cfg.data.max_duration}")
            continue
        if training and utt.duration and utt.duration < cfg.data.min_duration:
            report.add(manifest, line, utt.path,
                       f"{utt.duration:.2f} s is shorter than data.min_duration={cfg.data.min_duration}")
            continue
        utt.text = text
        kept.append((line, utt, alphabet.encode(text)))
    errors = cache.ensure([u.path for _, u, _ in kept], jobs or cfg.data.num_workers,
                          desc=f"features {Path(manifest).name}")
    final_utts, final_labels, frames = [], [], []
    for line, utt, labels in kept:
        if utt.path in errors:
            report.add(manifest, line, utt.path, errors[utt.path])
            continue
        num_frames = cache.load(utt.path).shape[1]
        if training and cfg.model.output_frames(num_frames) < ctc_min_frames(labels):
            report.add(manifest, line, utt.path, "audio too short for its transcript "
                       f"({num_frames} frames for {len(labels)} characters)")
            continue
        final_utts.append(utt)
        final_labels.append(labels)
        frames.append(num_frames)
    if not final_utts:
        raise ValueError(f"{manifest}: no usable utterances (see the skip report)")
    return SpeechDataset(final_utts, final_labels, frames, cache)


class BucketBatchSampler:
    """Length-bucketed batches: utterances of similar length share a batch, which
    minimises padding; batch order is shuffled every epoch (seeded), except that the
    first epoch runs shortest-first when SortaGrad is on."""

    def __init__(self, frames: list[int], batch_size: int, seed: int = 1, sortagrad: bool = True,
                 shuffle: bool = True, min_size: int = 1):
        self.batch_size = batch_size
        order = np.argsort(np.asarray(frames), kind="stable")
        self.batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
        # Data-parallel ranks each take a slice of a batch: none may come out empty.
        self.batches = [b for b in self.batches if len(b) >= min_size]
        self.seed, self.sortagrad, self.shuffle = seed, sortagrad, shuffle

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int) -> list[list[int]]:
        if not self.shuffle or (self.sortagrad and epoch == 0):
            return self.batches
        rng = np.random.default_rng([self.seed, epoch])
        return [self.batches[i] for i in rng.permutation(len(self.batches))]


def padding_fraction(batches: list[list[int]], frames: list[int]) -> float:
    total = sum(max(frames[i] for i in b) * len(b) for b in batches)
    return 1.0 - sum(frames) / total if total else 0.0


__all__ = ["Batch", "BucketBatchSampler", "SkipReport", "SpeechDataset", "load_dataset"]
