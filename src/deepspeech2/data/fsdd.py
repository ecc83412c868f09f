"""Free Spoken Digit Dataset: manifests from a local copy.

The dataset's files are ``recordings/<digit>_<speaker>_<take>.wav`` (8 kHz mono). Its
official split puts takes 0-4 in test; we keep takes 5-7 as dev and train on the rest.
A ``manifest.csv`` (path, transcript, speaker, split, duration) is used when present.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..audio import audio_duration
from ..text import number_to_words
from .manifest import Utterance, write_manifest

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
