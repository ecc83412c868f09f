"""The three manifest formats, read and written, and conversion between them.

* ``jsonl``: this project's, one JSON object per line (path, text, duration, speaker…).
* ``json``: deepspeech.pytorch's, ``{"root_path": R, "samples": [{"wav_path": W,
  "transcript_path": T}, …]}`` with W and T relative to R and the transcript in a text
  file. We add ``duration`` to each sample (deepspeech.pytorch ignores extra keys), so a
  round trip needs no audio header reads.
* ``csv``: what the MindSpore DeepSpeech2 course code reads (deepspeech.pytorch's older
  format, made from the JSON by its ``json_to_csv`` step): ``wav,txt`` per line, absolute
  paths, no header. Reading also accepts a CSV with a header row such as ``path,text``.

Formats without a transcript field need one ``.txt`` file per utterance; they are written
into a folder that mirrors the audio folders (default ``<manifest folder>/txt/<manifest
name>/``), and only when their content changed.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..audio import AudioError, audio_duration
from .manifest import ManifestError, Utterance, read_manifest, write_manifest

FORMATS = ("jsonl", "json", "csv")
_LIBRISPEECH_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_PATH_COLUMNS = ("path", "wav", "wav_path", "audio", "audio_path", "wav_filename", "file")
_TEXT_COLUMNS = ("text", "transcript", "sentence", "txt", "transcript_path", "txt_path")
_TEXT_FILE_COLUMNS = ("txt", "transcript_path", "txt_path")


def detect_format(path: str | os.PathLike) -> str:
    """``jsonl``, ``json`` or ``csv``, from the suffix and, for ``.json`` and unknown
    suffixes, from the content (a JSONL file named ``.json`` is still JSONL)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith("{"):
        # One object spanning the file with "samples" is deepspeech.pytorch's; anything
        # else starting with "{" is a line per object.
        first = head.split("\n", 1)[0]
        try:
            one_line = json.loads(first)
        except json.JSONDecodeError:
            return "json"
        return "json" if isinstance(one_line, dict) and "samples" in one_line and "path" not in one_line else "jsonl"
    if suffix == ".json":
        raise ManifestError(f"{path}: not a manifest (expected a JSON object)")
    return "csv"


def format_for_output(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` or the suffix (.jsonl, .json, .csv)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown manifest format {fmt!r}; formats: {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{path}: cannot tell the manifest format from the suffix; use .jsonl, .json or .csv "
                         "(or give the format)")
    return suffix


def _speaker_fields(audio: Path) -> tuple[str, dict]:
    """Speaker and chapter from a LibriSpeech-style name (``<speaker>-<chapter>-<utt>``)."""
    match = _LIBRISPEECH_ID.match(audio.stem)
    return (match.group(1), {"chapter": match.group(2)}) if match else ("", {})


def _duration(audio: Path, stored) -> float:
    if stored not in (None, ""):
        return float(stored)
    try:
        return audio_duration(audio)
    except AudioError:
        return 0.0  # the dataset reports the file when it fails to decode it


def _read_transcript(path: Path, where: str) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8").split())
    except FileNotFoundError:
        raise ManifestError(f"{where}: transcript file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where}: cannot read transcript file {path} ({e})") from None


def read_dsp_json(path: str | os.PathLike) -> list[Utterance]:
    """Read a deepspeech.pytorch JSON manifest (``root_path`` relative to its folder if not absolute)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        root = Path(data["root_path"])
        samples = data["samples"]
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ManifestError(f"{path}: not a deepspeech.pytorch manifest (root_path, samples): {e}") from None
    if not root.is_absolute():
        root = path.absolute().parent / root
    utterances = []
    for i, sample in enumerate(samples):
        where = f"{path}: sample {i}"
        try:
            audio = root / sample["wav_path"]
            transcript = root / sample["transcript_path"]
        except (KeyError, TypeError) as e:
            raise ManifestError(f"{where}: needs wav_path and transcript_path ({e})") from None
        speaker, extra = _speaker_fields(audio)
        utterances.append(Utterance(str(audio), _read_transcript(transcript, where),
                                    _duration(audio, sample.get("duration")), str(sample.get("speaker", speaker)),
                                    extra, line=i + 1))
    return utterances


def read_csv_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read ``wav,txt`` lines (MindSpore course), or a CSV with a header (``path,text``…).

    Relative paths are relative to the CSV's folder. Without a header, a second column
    ending in ``.txt`` names the transcript file, anything else is the transcript.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.absolute().parent
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows = [(n, r) for n, r in enumerate(rows, 1) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0][1]]
    path_col = next((header.index(c) for c in _PATH_COLUMNS if c in header), None)
    text_col = next((header.index(c) for c in _TEXT_COLUMNS if c in header), None)
    extra_cols: dict[str, int] = {}
    if path_col is not None and text_col is not None:
        text_is_file = header[text_col] in _TEXT_FILE_COLUMNS
        extra_cols = {c: header.index(c) for c in ("duration", "speaker") if c in header}
        rows = rows[1:]
    else:
        path_col, text_col, text_is_file = 0, 1, None  # None: decided per line by the ".txt" suffix
    utterances = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if len(row) <= max(path_col, text_col):
            raise ManifestError(f"{where}: expected at least {max(path_col, text_col) + 1} columns, got {row!r}")
        audio = Path(row[path_col].strip())
        audio = audio if audio.is_absolute() else root / audio
        second = row[text_col].strip()
        if text_is_file or (text_is_file is None and second.lower().endswith(".txt")):
            text = _read_transcript(Path(second) if Path(second).is_absolute() else root / second, where)
        else:
            text = second
        speaker, extra = _speaker_fields(audio)
        if "speaker" in extra_cols:
            speaker = row[extra_cols["speaker"]].strip()
        duration = row[extra_cols["duration"]].strip() if "duration" in extra_cols else None
        try:
            seconds = _duration(audio, duration)
        except ValueError:
            raise ManifestError(f"{where}: duration {duration!r} is not a number") from None
        utterances.append(Utterance(str(audio), text, seconds, speaker, extra, line=lineno))
    return utterances


def read_any(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest in any of the three formats."""
    fmt = detect_format(path)
    if fmt == "json":
        return read_dsp_json(path)
    if fmt == "csv":
        return read_csv_manifest(path)
    return read_manifest(path)


# The name the loaders use: any of this project's JSONL, deepspeech.pytorch's JSON, the course's CSV.
read_any_manifest = read_any


def default_txt_dir(manifest: str | os.PathLike) -> Path:
    """Where the transcript files of ``manifest`` go: ``<folder>/txt/<name>/``, shared by
    the ``.json`` and ``.csv`` of the same name."""
    manifest = Path(manifest).absolute()
    return manifest.parent / "txt" / manifest.stem


def write_transcripts(utterances: Sequence[Utterance], txt_dir: str | os.PathLike) -> list[Path]:
    """One ``.txt`` per utterance under ``txt_dir``, mirroring the audio files' folders
    below their common folder; files whose content is unchanged are not rewritten."""
    txt_dir = Path(txt_dir).absolute()
    audio = [Path(u.path).absolute() for u in utterances]
    if not audio:
        return []
    common = Path(os.path.commonpath([str(a.parent) for a in audio]))
    paths = []
    seen: set[Path] = set()
    for utt, wav in zip(utterances, audio, strict=True):
        txt = txt_dir / wav.relative_to(common).with_suffix(".txt")
        if txt in seen:
            raise ValueError(f"{wav}: two utterances would share the transcript file {txt}")
        seen.add(txt)
        try:
            unchanged = txt.read_text(encoding="utf-8") == utt.text
        except OSError:
            unchanged = False
        if not unchanged:
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(utt.text, encoding="utf-8")  # no newline, as deepspeech.pytorch writes them
        paths.append(txt)
    return paths


def write_dsp_json(path: str | os.PathLike, utterances: Sequence[Utterance],
                   txt_dir: str | os.PathLike | None = None) -> Path:
    """Write deepspeech.pytorch's JSON manifest (and the transcript files) atomically."""
    path = Path(path).absolute()
    txts = write_transcripts(utterances, txt_dir or default_txt_dir(path))
    audio = [Path(u.path).absolute() for u in utterances]
    root = Path(os.path.commonpath([str(p.parent) for p in audio + txts])) if audio else path.parent
    samples = [{"wav_path": wav.relative_to(root).as_posix(), "transcript_path": txt.relative_to(root).as_posix(),
                "duration": round(float(u.duration), 4)}
               for u, wav, txt in zip(utterances, audio, txts, strict=True)]
    atomic_write_text(path, json.dumps({"root_path": str(root), "samples": samples}, indent=1) + "\n")
    return path


def write_csv_manifest(path: str | os.PathLike, utterances: Sequence[Utterance],
                       txt_dir: str | os.PathLike | None = None) -> Path:
    """Write ``wav,txt`` lines with absolute paths (and the transcript files) atomically."""
    path = Path(path).absolute()
    txts = write_transcripts(utterances, txt_dir or default_txt_dir(path))
    lines = []
    for utt, txt in zip(utterances, txts, strict=True):
        wav = str(Path(utt.path).absolute())
        # The course code splits on ',' without CSV quoting, so a comma cannot be escaped.
        if "," in wav or "," in str(txt):
            raise ValueError(f"{wav}: a path with a comma cannot be written to a wav,txt CSV manifest")
        lines.append(f"{wav},{txt}\n")
    atomic_write_text(path, "".join(lines))
    return path


def write_any(path: str | os.PathLike, utterances: Sequence[Utterance], fmt: str | None = None,
              txt_dir: str | os.PathLike | None = None) -> Path:
    """Write ``utterances`` as ``fmt`` (default: from the suffix of ``path``)."""
    fmt = format_for_output(path, fmt)
    if fmt == "json":
        return write_dsp_json(path, utterances, txt_dir)
    if fmt == "csv":
        return write_csv_manifest(path, utterances, txt_dir)
    return write_manifest(path, utterances)


def convert(source: str | os.PathLike, dest: str | os.PathLike, fmt: str | None = None,
            txt_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Convert a manifest between the formats; returns (written path, utterances)."""
    utterances = read_any(source)
    return write_any(dest, utterances, fmt, txt_dir), len(utterances)
