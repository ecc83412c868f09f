"""Manifests: one utterance per line of JSON (path, text, duration, speaker).

Paths in a manifest file are stored relative to the manifest's folder when they lie
below it, so a corpus folder can be moved or copied as a whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
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


class CorpusError(ValueError):
    """A corpus folder or file that cannot be read; the message names it."""


def scan_corpus_copy(corpus: str, root: Path, marker: str, read_native: Callable[[Path], list],
                     read_csv: Callable[[Path], list], command: str) -> list[tuple[str, Utterance]]:
    """(split, utterance) items of a local copy of a corpus: from its ``manifest.csv`` (the
    layout ../shared uses) when it has one, else from the corpus's own layout, recognised by
    its index file ``marker``."""
    if (root / "manifest.csv").is_file():
        items = read_csv(root)
    elif (root / marker).is_file():
        items = read_native(root)
    else:
        raise CorpusError(f"{root}: neither manifest.csv nor {marker} found; is this {corpus}? "
                          f"(download it with: ds2 data {command} --download --root {root})")
    if not items:
        raise CorpusError(f"{root}: no utterances found")
    return items


def write_speaker_split_manifests(corpus: str, items: Iterable[tuple[str, Utterance]], out_dir: str | os.PathLike,
                                  dev_every: int, quiet: bool = False) -> dict[str, Path]:
    """Write ``<split>.jsonl`` for each split of ``(split, utterance)`` items, after moving every
    ``dev_every``-th training speaker (in sorted order) to ``dev``: the corpora that ship no dev
    split get one whose speakers training never hears. Returns ``{split: path}``."""
    items = list(items)
    train_speakers = sorted({u.speaker for split, u in items if split == "train"})
    dev_speakers = set(train_speakers[dev_every // 2:: dev_every])
    splits: dict[str, list[Utterance]] = {"train": [], "dev": []}
    for split, utt in items:
        if split == "train" and utt.speaker in dev_speakers:
            split = "dev"
        splits.setdefault(split, []).append(utt)
    paths = {}
    for split, utts in splits.items():
        paths[split] = write_manifest(Path(out_dir) / f"{split}.jsonl", utts)
        if not quiet:
            seconds = sum(u.duration for u in utts)
            length = f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
            print(f"{corpus} {split}: {len(utts)} utterances, {len({u.speaker for u in utts})} speakers, "
                  f"{length} -> {paths[split]}")
    return paths


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
