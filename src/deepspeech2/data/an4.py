"""CMU AN4 (alphanumeric census database): real short utterances by 74 (+10 test) speakers.

Two layouts are read:

* a compact copy with ``manifest.csv`` (``path,transcript,speaker,split,duration``), as in
  ``../shared/data/an4`` (training part only);
* the archive CMU publishes (``an4/etc/an4_{train,test}.transcription`` with lines
  ``<s> TEXT </s> (fileid)`` and NIST SPHERE audio under ``an4/wav/an4_clstk/`` and
  ``an4/wav/an4test_clstk/``), as ``download_an4`` leaves it.

A few training speakers (every ``DEV_EVERY``-th in sorted order) form a ``dev`` split; the
archive's test part, when present, is ``test``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..audio import AudioError, audio_duration
from .manifest import CorpusError, Utterance, scan_corpus_copy, write_speaker_split_manifests

URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
DEV_EVERY = 15  # 74 training speakers -> 5 dev speakers, about 60 utterances
_LINE = re.compile(r"^\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$")


def _from_csv(root: Path) -> list[tuple[str, Utterance]]:
    items = []
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "transcript", "speaker"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{root / 'manifest.csv'}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, 2):
            path = root / row["path"]
            try:
                duration = float(row["duration"]) if row.get("duration") else audio_duration(path)
            except (ValueError, AudioError) as e:
                raise CorpusError(f"{root / 'manifest.csv'}:{line}: {e}") from None
            items.append((row.get("split") or "train",
                          Utterance(str(path.absolute()), row["transcript"], duration, row["speaker"], line=line)))
    return items


def _from_cmu(root: Path) -> list[tuple[str, Utterance]]:
    items = []
    for split, folder in (("train", "an4_clstk"), ("test", "an4test_clstk")):
        transcription = root / "etc" / f"an4_{split}.transcription"
        if not transcription.is_file():
            continue
        for lineno, line in enumerate(transcription.read_text(encoding="latin-1").splitlines(), 1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if not match:
                raise CorpusError(f"{transcription}:{lineno}: expected '<s> TEXT </s> (fileid)', got {line!r}")
            text, file_id = match.group(1), match.group(2)
            speaker = file_id.split("-")[1] if file_id.count("-") >= 2 else ""
            path = root / "wav" / folder / speaker / f"{file_id}.sph"
            if not path.is_file():
                raise CorpusError(f"{transcription}:{lineno}: audio file {path} not found")
            text = " ".join(re.sub(r"[^A-Z' ]", " ", text.upper()).split())
            items.append((split, Utterance(str(path.absolute()), text, audio_duration(path), speaker, line=lineno)))
    return items


def scan_an4(root: str | Path) -> list[tuple[str, Utterance]]:
    """(split, utterance) for every utterance of a local copy."""
    return scan_corpus_copy("AN4", Path(root), "etc/an4_train.transcription", _from_cmu, _from_csv, "an4")


def build_an4_manifests(root: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, Path]:
    """Write train/dev (and test, when the copy has it) JSONL manifests."""
    return write_speaker_split_manifests("an4", scan_an4(root), out_dir, DEV_EVERY, quiet)


def download_an4(root: str | Path, url: str = URL, md5: str | None = None, quiet: bool = False) -> Path:
    """Download and unpack CMU's AN4 archive into ``root`` (nothing to do when ``root``
    already holds AN4); returns ``root``."""
    from .download import download_corpus

    return download_corpus("CMU AN4", url, root, "etc/an4_train.transcription", md5, quiet=quiet)
