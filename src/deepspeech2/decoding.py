"""CTC decoding: greedy (best path) with character alignment for word timings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .text import Alphabet


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float


def greedy_path(log_probs: np.ndarray, length: int | None = None) -> np.ndarray:
    """Most likely label per frame, (T, C) -> (T,)."""
    if length is not None:
        log_probs = log_probs[:length]
    return np.asarray(log_probs).argmax(axis=-1)


def collapse(path: np.ndarray, blank_id: int) -> tuple[list[int], list[int]]:
    """Merge repeats and drop blanks; returns label ids and the frame each one starts at."""
    ids, frames = [], []
    previous = -1
    for frame, label in enumerate(path.tolist()):
        if label != previous and label != blank_id:
            ids.append(label)
            frames.append(frame)
        previous = label
    return ids, frames


def greedy_decode(log_probs: np.ndarray, lengths: np.ndarray, alphabet: Alphabet) -> list[str]:
    """Batch (B, T, C) of log-probabilities -> texts."""
    texts = []
    for lp, length in zip(log_probs, lengths, strict=False):
        ids, _ = collapse(greedy_path(lp, int(length)), alphabet.blank_id)
        texts.append(" ".join(alphabet.decode(ids).split()))
    return texts


def greedy_words(log_probs: np.ndarray, alphabet: Alphabet, frame_seconds: float,
                 offset: float = 0.0) -> list[Word]:
    """Words with start/end times from the greedy CTC alignment of one utterance (T, C).

    A word starts at the frame of its first character and ends after the last frame
    on which its last character is still emitted.
    """
    path = greedy_path(log_probs)
    ids, frames = collapse(path, alphabet.blank_id)
    labels = alphabet.labels
    space = alphabet.labels.index(" ")
    words: list[Word] = []
    current, start, end = "", 0, 0
    for label, frame in zip(ids, frames, strict=False):
        if label == space:
            if current:
                words.append(Word(current, offset + start * frame_seconds, offset + end * frame_seconds))
            current = ""
            continue
        if not current:
            start = frame
        current += labels[label]
        end = frame + 1
        while end < len(path) and path[end] == label:
            end += 1
    if current:
        words.append(Word(current, offset + start * frame_seconds, offset + end * frame_seconds))
    return words
