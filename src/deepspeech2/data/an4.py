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
import shutil
from pathlib import Path

from ..audio import AudioError, audio_duration
from .manifest import Utterance, write_manifest
from .speechocean762 import CorpusError

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
    root = Path(root)
    if (root / "manifest.csv").is_file():
        items = _from_csv(root)
    elif (root / "etc" / "an4_train.transcription").is_file():
        items = _from_cmu(root)
    else:
        raise CorpusError(f"{root}: neither manifest.csv nor etc/an4_train.transcription found; is this AN4? "
                          f"(download it with: ds2 data an4 --download --root {root})")
    if not items:
        raise CorpusError(f"{root}: no utterances found")
    return items


def build_an4_manifests(root: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, Path]:
    """Write train/dev (and test, when the copy has it) JSONL manifests."""
    items = scan_an4(root)
    train_speakers = sorted({u.speaker for s, u in items if s == "train"})
    dev_speakers = set(train_speakers[DEV_EVERY // 2:: DEV_EVERY])
    splits: dict[str, list[Utterance]] = {"train": [], "dev": []}
    for split, utt in items:
        if split == "train" and utt.speaker in dev_speakers:
            split = "dev"
        splits.setdefault(split, []).append(utt)
    paths = {}
    for split, utts in splits.items():
        paths[split] = write_manifest(Path(out_dir) / f"{split}.jsonl", utts)
        if not quiet:
            print(f"an4 {split}: {len(utts)} utterances, {len({u.speaker for u in utts})} speakers, "
                  f"{sum(u.duration for u in utts) / 60:.1f} min -> {paths[split]}")
    return paths


def download_an4(root: str | Path, url: str = URL, md5: str | None = None, quiet: bool = False) -> Path:
    """Download and unpack CMU's AN4 archive into ``root`` (nothing to do when ``root``
    already holds AN4); returns ``root``."""
    from .download import ArchiveError, download, safe_extract

    root = Path(root)
    if (root / "etc" / "an4_train.transcription").is_file() or (root / "manifest.csv").is_file():
        if not quiet:
            print(f"an4: {root} already holds the corpus; not downloading")
        return root
    archive = download(url, root / "downloads" / Path(url).name, md5, desc=None if quiet else "an4")
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
        found = [p.parent.parent for p in staging.rglob("etc/an4_train.transcription")]
        if not found:
            raise ArchiveError(f"{url}: no etc/an4_train.transcription in the archive; is it CMU AN4?")
        for child in found[0].iterdir():
            shutil.move(str(child), str(root / child.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
