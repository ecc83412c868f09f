"""speechocean762 (OpenSLR resource 101): real read English by 250 non-native speakers.

Two layouts are read:

* a compact copy with ``manifest.csv`` (``path,transcript,speaker,split,duration,...``),
  as in ``../shared/data/speechocean762``;
* the corpus as published (``train/`` and ``test/`` Kaldi folders with ``text`` and
  ``wav.scp``, audio in ``WAVE/SPEAKERnnnn/*.WAV``), as ``download_speechocean762``
  leaves it.

The corpus's train and test splits have disjoint speakers. For model selection, a few
training speakers (every ``DEV_EVERY``-th in sorted order) form a ``dev`` split and leave
training, so no test speaker is ever used before the final evaluation.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..audio import AudioError, audio_duration
from .manifest import CorpusError, Utterance, scan_corpus_copy, write_speaker_split_manifests

URL = "https://www.openslr.org/resources/101/speechocean762.tar.gz"
DEV_EVERY = 20  # 125 training speakers -> 7 dev speakers, about 140 utterances


def _from_csv(root: Path) -> list[tuple[str, Utterance]]:
    items = []
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "transcript", "speaker", "split"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{root / 'manifest.csv'}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, 2):
            path = root / row["path"]
            try:
                duration = float(row["duration"]) if row.get("duration") else audio_duration(path)
            except (ValueError, AudioError) as e:
                raise CorpusError(f"{root / 'manifest.csv'}:{line}: {e}") from None
            extra = {k: row[k] for k in ("age", "gender") if row.get(k)}
            items.append((row["split"], Utterance(str(path.absolute()), row["transcript"], duration,
                                                  row["speaker"], extra, line=line)))
    return items


def _from_kaldi(root: Path) -> list[tuple[str, Utterance]]:
    items = []
    for split in ("train", "test"):
        folder = root / split
        texts: dict[str, str] = {}
        for lineno, line in enumerate((folder / "text").read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                utt, _, text = line.strip().replace("\t", " ").partition(" ")
                if not text.strip():
                    raise CorpusError(f"{folder / 'text'}:{lineno}: no transcript for {utt}")
                texts[utt] = " ".join(text.split()).upper()
        for lineno, line in enumerate((folder / "wav.scp").read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, rel = line.strip().replace("\t", " ").partition(" ")
            path = root / rel.strip()
            if utt not in texts:
                raise CorpusError(f"{folder / 'wav.scp'}:{lineno}: {utt} has no line in {folder / 'text'}")
            if not path.is_file():
                raise CorpusError(f"{folder / 'wav.scp'}:{lineno}: audio file {path} not found")
            speaker = path.parent.name.removeprefix("SPEAKER")
            items.append((split, Utterance(str(path.absolute()), texts[utt], audio_duration(path), speaker,
                                           line=lineno)))
    return items


def scan_speechocean762(root: str | Path) -> list[tuple[str, Utterance]]:
    """(split, utterance) for every transcribed utterance of a local copy."""
    return scan_corpus_copy("speechocean762", Path(root), "train/wav.scp", _from_kaldi, _from_csv, "speechocean762")


def build_speechocean762_manifests(root: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, Path]:
    """Write train/dev/test JSONL manifests; dev = a few training speakers (see DEV_EVERY)."""
    return write_speaker_split_manifests("speechocean762", scan_speechocean762(root), out_dir, DEV_EVERY, quiet)


def download_speechocean762(root: str | Path, url: str = URL, md5: str | None = None, quiet: bool = False) -> Path:
    """Download and unpack the OpenSLR archive into ``root`` (nothing to do when ``root``
    already holds the corpus); returns ``root``."""
    from .download import download_corpus

    return download_corpus("speechocean762", url, root, "train/wav.scp", md5,
                           archive_name="speechocean762.tar.gz", quiet=quiet)
