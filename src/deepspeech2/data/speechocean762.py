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
import shutil
from pathlib import Path

from ..audio import AudioError, audio_duration
from .manifest import Utterance, write_manifest

URL = "https://www.openslr.org/resources/101/speechocean762.tar.gz"
DEV_EVERY = 20  # 125 training speakers -> 7 dev speakers, about 140 utterances


class CorpusError(ValueError):
    """A corpus folder or file that cannot be read; the message names it."""


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
    root = Path(root)
    if (root / "manifest.csv").is_file():
        items = _from_csv(root)
    elif (root / "train" / "wav.scp").is_file():
        items = _from_kaldi(root)
    else:
        raise CorpusError(f"{root}: neither manifest.csv nor train/wav.scp found; is this speechocean762? "
                          f"(download it with: ds2 data speechocean762 --download --root {root})")
    if not items:
        raise CorpusError(f"{root}: no utterances found")
    return items


def build_speechocean762_manifests(root: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, Path]:
    """Write train/dev/test JSONL manifests; dev = a few training speakers (see DEV_EVERY)."""
    items = scan_speechocean762(root)
    train_speakers = sorted({u.speaker for s, u in items if s == "train"})
    dev_speakers = set(train_speakers[DEV_EVERY // 2:: DEV_EVERY])
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    for split, utt in items:
        if split == "train" and utt.speaker in dev_speakers:
            split = "dev"
        splits.setdefault(split, []).append(utt)
    paths = {}
    for split, utts in splits.items():
        paths[split] = write_manifest(Path(out_dir) / f"{split}.jsonl", utts)
        if not quiet:
            speakers = len({u.speaker for u in utts})
            print(f"speechocean762 {split}: {len(utts)} utterances, {speakers} speakers, "
                  f"{sum(u.duration for u in utts) / 3600:.2f} h -> {paths[split]}")
    return paths


def download_speechocean762(root: str | Path, url: str = URL, md5: str | None = None, quiet: bool = False) -> Path:
    """Download and unpack the OpenSLR archive into ``root`` (nothing to do when ``root``
    already holds the corpus); returns ``root``."""
    from .download import ArchiveError, download, safe_extract

    root = Path(root)
    if (root / "train" / "wav.scp").is_file() or (root / "manifest.csv").is_file():
        if not quiet:
            print(f"speechocean762: {root} already holds the corpus; not downloading")
        return root
    archive = download(url, root / "downloads" / "speechocean762.tar.gz", md5, desc=None if quiet else "speechocean762")
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
        found = [p.parent.parent for p in staging.rglob("train/wav.scp")]
        if not found:
            raise ArchiveError(f"{url}: no train/wav.scp in the archive; is it speechocean762?")
        for child in found[0].iterdir():
            shutil.move(str(child), str(root / child.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
