"""Word and character error rates, with the DeepSpeech2 definitions.

WER = word edits / reference words. CER = character edits / reference characters,
both strings taken without spaces (as deepspeech.pytorch and the MindSpore course
code compute it). Corpus figures sum edits and lengths over utterances; they are not
averages of per-utterance rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


def _edits(reference: list[str] | str, hypothesis: list[str] | str) -> int:
    """Levenshtein distance between two sequences (word lists or strings)."""
    if not reference:
        return len(hypothesis)
    if not hypothesis:
        return len(reference)
    if isinstance(reference, str):
        out = jiwer.process_characters(reference, hypothesis)
    else:
        out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words)."""
    ref = reference.split()
    return _edits(ref, hypothesis.split()), len(ref)


def char_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference characters), spaces removed from both."""
    ref = reference.replace(" ", "")
    return _edits(ref, hypothesis.replace(" ", "")), len(ref)


@dataclass
class ErrorRates:
    word_edits: int = 0
    words: int = 0
    char_edits: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, reference: str, hypothesis: str) -> tuple[float, float]:
        """Accumulate one utterance; returns its own (WER, CER)."""
        we, w = word_edits(reference, hypothesis)
        ce, c = char_edits(reference, hypothesis)
        self.word_edits += we
        self.words += w
        self.char_edits += ce
        self.chars += c
        self.utterances += 1
        return we / max(w, 1), ce / max(c, 1)

    @property
    def wer(self) -> float:
        return self.word_edits / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_edits / max(self.chars, 1)


def wer(reference: str, hypothesis: str) -> float:
    edits, n = word_edits(reference, hypothesis)
    return edits / max(n, 1)


def cer(reference: str, hypothesis: str) -> float:
    edits, n = char_edits(reference, hypothesis)
    return edits / max(n, 1)
