"""Alphabet, text normalisation and CTC label encoding.

The 29-symbol alphabet is the one of DeepSpeech2 on LibriSpeech: apostrophe, A-Z,
space and the CTC blank. The official MindSpore model puts the blank last,
deepspeech.pytorch puts it first; both layouts are supported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHARACTERS = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ "
BLANK = "_"

_ONES = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN "
         "FOURTEEN FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN").split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = [(10**12, "TRILLION"), (10**9, "BILLION"), (10**6, "MILLION"), (1000, "THOUSAND")]
_ORDINAL_WORDS = {"ONE": "FIRST", "TWO": "SECOND", "THREE": "THIRD", "FIVE": "FIFTH",
                  "EIGHT": "EIGHTH", "NINE": "NINTH", "TWELVE": "TWELFTH"}


def number_to_words(n: int) -> str:
    """Spell out a non-negative integer in English: 1984 -> ONE THOUSAND NINE HUNDRED EIGHTY FOUR."""
    if n < 0:
        return "MINUS " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " HUNDRED" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("Y"):
        words[-1] = last[:-1] + "IETH"
    else:
        words[-1] = last + "TH"
    return " ".join(words)


def _spell_number(match: re.Match) -> str:
    digits, decimals, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if suffix:
        return " " + ordinal_to_words(int(digits)) + " "
    spoken = number_to_words(int(digits))
    if decimals:
        spoken += " POINT " + " ".join(_ONES[int(d)] for d in decimals)
    return " " + spoken + " "


_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?\b", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_SEPARATORS = re.compile(r"[-\u2013\u2014_/\\]+")
_PUNCTUATION = re.compile(r"[.,;:!?\"()\[\]{}\u201c\u201d\u00ab\u00bb\u2026*#~|<>]+")


def normalize_text(text: str, spell_numbers: bool = True) -> str:
    """Upper-case text reduced to the alphabet: punctuation removed, digits spelled out.

    Raises ValueError naming the first character that cannot be mapped (or any digit
    when ``spell_numbers`` is off), so callers can report the file and line.
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("&", " AND ").replace("%", " PERCENT ")
    if spell_numbers:
        text = _NUMBER.sub(_spell_number, text)
    elif re.search(r"\d", text):
        raise ValueError(f"digits in {text.strip()!r}: spell numbers out or enable spell_numbers")
    text = _SEPARATORS.sub(" ", text)
    text = _PUNCTUATION.sub(" ", text).upper()
    # Quotes used as quotation marks, not as apostrophes inside a word.
    text = re.sub(r"(^|\s)'+|'+(\s|$)", r"\1 \2", text)
    text = " ".join(text.split())
    for char in text:
        if char not in CHARACTERS:
            raise ValueError(f"character {char!r} (U+{ord(char):04X}) outside the alphabet in {text!r}")
    return text


def read_text_lines(path: str | Path) -> Iterator[str | None]:
    """The normalised sentence of each non-empty line of a ``text`` or ``ID<TAB>text`` file:
    ``None`` for a line with a character the alphabet cannot spell, ``""`` for one that
    normalises to nothing. Raises UnicodeDecodeError for a file that is not UTF-8."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if "\t" in line:
                line = line.split("\t", 1)[1]
            try:
                yield normalize_text(line)
            except ValueError:
                yield None


@dataclass(frozen=True)
class Alphabet:
    """Maps text to CTC label ids and back; ``blank`` is "first" or "last"."""

    blank: str = "last"
    characters: str = CHARACTERS

    def __post_init__(self) -> None:
        if self.blank not in ("first", "last"):
            raise ValueError(f"text.blank must be 'first' or 'last', got {self.blank!r}")

    @property
    def labels(self) -> list[str]:
        chars = list(self.characters)
        return chars + [BLANK] if self.blank == "last" else [BLANK] + chars

    @property
    def blank_id(self) -> int:
        return len(self.characters) if self.blank == "last" else 0

    def __len__(self) -> int:
        return len(self.characters) + 1

    def encode(self, text: str) -> list[int]:
        offset = 0 if self.blank == "last" else 1
        try:
            return [self.characters.index(c) + offset for c in text]
        except ValueError:
            bad = next(c for c in text if c not in self.characters)
            raise ValueError(f"character {bad!r} outside the alphabet in {text!r}") from None

    def decode(self, ids: list[int]) -> str:
        """Label ids (no blanks, already collapsed) back to text."""
        labels = self.labels
        return "".join(labels[i] for i in ids if i != self.blank_id)
