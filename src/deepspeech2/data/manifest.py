"""Manifests: one utterance per line of JSON (path, text, duration, speaker).

Paths in a manifest file are stored relative to the manifest's folder when they lie
below it, so a corpus folder can be moved or copied as a whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that readers see either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def read_any_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest in any supported format: this project's JSONL, deepspeech.pytorch's
    JSON or the ``wav,txt`` CSV of the MindSpore course (see ``formats``)."""
    from .formats import read_any  # formats builds on this module

    return read_any(path)
