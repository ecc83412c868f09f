"""Free Spoken Digit Dataset: manifests from a local copy.

The dataset's files are ``recordings/<digit>_<speaker>_<take>.wav`` (8 kHz mono). Its
official split puts takes 0-4 in test; we keep takes 5-7 as dev and train on the rest.
A ``manifest.csv`` (path, transcript, speaker, split, duration) is used when present.
``download_fsdd`` fetches the recordings from the dataset's GitHub repository.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

from ..audio import audio_duration
from ..text import number_to_words
from .manifest import Utterance, write_manifest

# The repository's archive; a branch archive has no stable checksum, so the download is
# checked by its content (recordings named <digit>_<speaker>_<take>.wav) instead.
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.tar.gz"
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DEV_TAKES = range(5, 8)


def _split_for(take: int) -> str:
    if take < 5:
        return "test"
    return "dev" if take in DEV_TAKES else "train"


def scan_fsdd(root: str | Path) -> list[tuple[str, Utterance]]:
    """(split, utterance) for every recording under ``root``."""
    root = Path(root)
    recordings = root / "recordings"
    if not recordings.is_dir():
        raise FileNotFoundError(f"{root}: no recordings/ folder; is this a copy of the Free Spoken Digit Dataset?")
    manifest = root / "manifest.csv"
    known: dict[str, dict] = {}
    if manifest.is_file():
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                known[Path(row["path"]).name] = row
    items = []
    for wav in sorted(recordings.glob("*.wav")):
        match = _NAME.match(wav.name)
        if not match:
            continue
        digit, speaker, take = int(match.group(1)), match.group(2), int(match.group(3))
        row = known.get(wav.name)
        duration = float(row["duration"]) if row and row.get("duration") else audio_duration(wav)
        text = row["transcript"] if row else number_to_words(digit)
        items.append((_split_for(take), Utterance(str(wav.absolute()), text, duration, speaker,
                                                  {"take": take})))
    if not items:
        raise FileNotFoundError(f"{recordings}: no <digit>_<speaker>_<take>.wav recordings found")
    return items


def build_fsdd_manifests(root: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write train/dev/test JSONL manifests for a local FSDD copy; returns their paths."""
    out_dir = Path(out_dir)
    items = scan_fsdd(root)
    paths = {}
    for split in ("train", "dev", "test"):
        utts = [u for s, u in items if s == split]
        paths[split] = write_manifest(out_dir / f"{split}.jsonl", utts)
        hours = sum(u.duration for u in utts) / 3600
        print(f"fsdd {split}: {len(utts)} utterances, {60 * hours:.1f} min -> {paths[split]}")
    return paths


def download_fsdd(root: str | Path, url: str = FSDD_URL, md5: str | None = None, quiet: bool = False) -> Path:
    """Download the dataset's repository archive and put its recordings in
    ``root/recordings``; does nothing when recordings are already there. Returns ``root``."""
    from .download import ArchiveError, download, safe_extract

    root = Path(root)
    recordings = root / "recordings"
    if recordings.is_dir() and any(_NAME.match(p.name) for p in recordings.glob("*.wav")):
        print(f"fsdd: {recordings} already has recordings; not downloading")
        return root
    archive = download(url, root / "downloads" / "free-spoken-digit-dataset.tar.gz", md5,
                       desc=None if quiet else "fsdd")
    staging = root / ".extract-fsdd"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
        found = [p for p in (staging / "recordings", *staging.glob("*/recordings")) if p.is_dir()]
        wavs = [w for w in found[0].glob("*.wav") if _NAME.match(w.name)] if found else []
        if not wavs:
            raise ArchiveError(f"{url}: no recordings/<digit>_<speaker>_<take>.wav in the archive; is it the "
                               "Free Spoken Digit Dataset?")
        recordings.mkdir(parents=True, exist_ok=True)
        for wav in wavs:
            os.replace(wav, recordings / wav.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"fsdd: {len(wavs)} recordings -> {recordings}")
    return root
