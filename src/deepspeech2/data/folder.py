"""Your own recordings: a folder of audio files with same-named ``.txt`` transcripts, or a
CSV of ``path,text`` rows, checked and turned into a manifest.

    import_folder("my_recordings")            # -> my_recordings/manifest.jsonl

Every file is decoded (in parallel) and every transcript normalised to the alphabet;
files without a transcript, that fail to decode, or whose transcript has characters
that cannot be mapped are left out, named on the terminal and listed with the reason
in ``<manifest>.report.jsonl``. Files in sub-folders get the sub-folder as speaker.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..text import normalize_text
from .formats import default_txt_dir, write_any
from .manifest import Utterance
from .stats import parallel_map, probe_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


@dataclass
class ImportResult:
    manifests: dict[str, Path]
    utterances: int
    hours: float
    problems: list[dict] = field(default_factory=list)
    normalised: int = 0
    report: Path | None = None


def _from_folder(folder: Path, ignore: Path) -> tuple[list[tuple[Path, str | None, str]], list[dict]]:
    """(audio, transcript or None, speaker) for every audio file below ``folder``, and
    problems with transcripts that have no audio (except under ``ignore``, where an
    earlier import wrote the .json/.csv transcript files)."""
    found = []
    audio_stems = set()
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        txt = audio.with_suffix(".txt")
        text = " ".join(txt.read_text(encoding="utf-8", errors="replace").split()) if txt.is_file() else None
        relative = audio.relative_to(folder)
        speaker = relative.parts[0] if len(relative.parts) > 1 else ""
        found.append((audio, text, speaker))
        audio_stems.add(audio.with_suffix(""))
    problems = [{"path": str(txt), "problem": "transcript without an audio file"}
                for txt in sorted(folder.rglob("*.txt"))
                if txt.with_suffix("") not in audio_stems and ignore not in txt.absolute().parents]
    return found, problems


def _from_csv(table: Path) -> list[tuple[Path, str | None, str]]:
    """Rows of a ``path,text[,speaker]`` CSV (header optional; paths relative to the CSV)."""
    with open(table, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    has_header = bool(rows) and [c.strip().lower() for c in rows[0][:2]] in (["path", "text"], ["path", "transcript"])
    header = [c.strip().lower() for c in rows[0]] if has_header else ["path", "text", "speaker"]
    rows = rows[1:] if has_header else rows
    speaker_col = header.index("speaker") if "speaker" in header else None
    found = []
    for lineno, row in enumerate(rows, 2 if has_header else 1):
        if len(row) < 2:
            raise ValueError(f"{table}:{lineno}: expected path,text, got {row!r}")
        audio = Path(row[0].strip())
        audio = audio if audio.is_absolute() else table.absolute().parent / audio
        speaker = row[speaker_col].strip() if speaker_col is not None and len(row) > speaker_col else ""
        found.append((audio, row[1].strip(), speaker))
    return found


def import_folder(source: str | os.PathLike, out: str | os.PathLike | None = None,
                  formats: str | list[str] | tuple[str, ...] = ("jsonl",), jobs: int | None = None,
                  quiet: bool = False) -> ImportResult:
    """Check a folder of audio + ``.txt`` files (or a ``path,text`` CSV) and write its
    manifest (default ``<folder>/manifest.jsonl`` or ``<csv name>.jsonl``) in ``formats``."""
    source = Path(source)
    if source.is_dir():
        out_path = Path(out) if out else source / "manifest.jsonl"
        found, problems = _from_folder(source, default_txt_dir(out_path))
    elif source.is_file() and source.suffix.lower() == ".csv":
        out_path = Path(out) if out else source.with_suffix(".jsonl")
        found, problems = _from_csv(source), []
    else:
        raise FileNotFoundError(f"{source}: not a folder of audio files or a .csv of path,text rows")
    if not found:
        raise FileNotFoundError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    fmts = tuple(dict.fromkeys(formats.split(",") if isinstance(formats, str) else formats))

    checked = [(a, t, s) for a, t, s in found if t]
    probes = iter(parallel_map(probe_audio, [(str(a), None, 16000) for a, _, _ in checked], jobs,
                               None if quiet else f"decode {source.name}"))
    utterances: list[Utterance] = []
    normalised = 0
    for audio, text, speaker in found:
        if text is None:
            problems.append({"path": str(audio), "problem": f"no transcript ({audio.with_suffix('.txt').name})"})
            continue
        if not text:
            problems.append({"path": str(audio), "problem": "empty transcript"})
            continue
        duration, _, error = next(probes)
        if error:
            problems.append({"path": str(audio), "problem": error})
            continue
        try:
            clean = normalize_text(text)
        except ValueError as e:
            problems.append({"path": str(audio), "problem": f"transcript: {e}"})
            continue
        if not clean:
            problems.append({"path": str(audio), "problem": f"transcript {text!r} is empty after normalisation"})
            continue
        normalised += clean != text
        utterances.append(Utterance(str(audio.absolute()), clean, duration, speaker))

    report = out_path.with_name(f"{out_path.stem}.report.jsonl")
    atomic_write_text(report, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in problems))
    for p in problems[:20]:
        print(f"{p['path']}: {p['problem']}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} files left out; every one is listed in {report}", file=sys.stderr)
    if not utterances:
        raise ValueError(f"{source}: none of the {len(found)} audio files can be used; see {report}")
    manifests = {}
    for fmt in fmts:
        path = out_path if fmt == "jsonl" or out_path.suffix == f".{fmt}" else out_path.with_suffix(f".{fmt}")
        manifests[fmt] = write_any(path, utterances, fmt)
    hours = sum(u.duration for u in utterances) / 3600
    if not quiet:
        note = f", {normalised} transcripts normalised (case, punctuation, numbers)" if normalised else ""
        length = (f"{3600 * hours:.1f} s" if hours < 1 / 60 else f"{60 * hours:.1f} min" if hours < 1
                  else f"{hours:.2f} h")
        print(f"{len(utterances)} utterances, {length}{note} -> "
              f"{', '.join(str(p) for p in manifests.values())}")
    return ImportResult(manifests, len(utterances), hours, problems, normalised, report)
