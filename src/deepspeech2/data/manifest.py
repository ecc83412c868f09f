"""Manifests: one utterance per line of JSON (path, text, duration, speaker).

Paths in a manifest file are stored relative to the manifest's folder when they lie
below it, so a corpus folder can be moved or copied as a whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text  # noqa: F401  (its old home: importers may still use this name)


@dataclass
class Utterance:
    path: str  # absolute once read; relative to the manifest folder on disk
    text: str
    duration: float
    speaker: str = ""
    extra: dict = field(default_factory=dict)
    # Where it was read: the manifest's line (JSONL, CSV) or sample number (JSON), 0 if not read.
    line: int = field(default=0, compare=False)

    @property
    def id(self) -> str:
        return Path(self.path).stem


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names file and line."""


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> Path:
    """Write a JSONL manifest atomically; paths below its folder become relative."""
    path = Path(path).absolute()
    root = path.parent
    lines = []
    for utt in utterances:
        audio = Path(utt.path).absolute()
        try:
            stored = str(audio.relative_to(root))
        except ValueError:
            stored = str(audio)
        record = {"path": stored, "text": utt.text, "duration": round(float(utt.duration), 4),
                  "speaker": utt.speaker, **utt.extra}
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSONL manifest; a malformed line raises ManifestError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.absolute().parent
    utterances = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                audio = Path(record.pop("path"))
                text = record.pop("text")
                duration = float(record.pop("duration", 0.0))
                speaker = str(record.pop("speaker", ""))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ManifestError(f"{path}:{lineno}: malformed manifest line ({e})") from None
            if not audio.is_absolute():
                audio = root / audio
            utterances.append(Utterance(str(audio), str(text), duration, speaker, record, line=lineno))
    return utterances
