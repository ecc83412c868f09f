"""An evaluation set of real speech from Debian's Asterisk prompts (or any ``name: text`` list).

``asterisk-core-sounds-en-wav`` installs hundreds of telephone-system prompts read by one
American female voice (8 kHz WAV) and ``asterisk-core-sounds-en`` their texts, one
``name: text`` line each (``name`` may hold a folder, ``digits/5``). This module turns such
a list into a manifest for evaluation only (never for training):

* a prompt whose text is only a bracketed or parenthesised description (``[this is a
  simple beep tone]``, ``(10 seconds of silence)``) is not speech: dropped and reported;
  such asides inside a text (``at [@]``, ``IAX (note: does not say "2")``, ``... pound key.
  (simple tone sound plays)``) are editors' notes, not words of the prompt: cut;
* ``*`` and ``#`` are read as "star" and "pound", as the prompts say them;
* numbers of one or two digits are spelled out; a prompt with a longer number (``1234``,
  ``28.8``), which a speaker may read in several ways, is dropped and reported;
* a prompt whose audio file is missing, or whose text has other characters, is dropped
  and reported.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

from ..audio import AudioError, audio_duration
from ..text import normalize_text, number_to_words
from .manifest import Utterance, atomic_write_text, write_manifest

TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SOUNDS = Path("/usr/share/asterisk/sounds/en")
INSTALL_HINT = "apt-get install -y asterisk-core-sounds-en-wav asterisk-core-sounds-en"
_ASIDES = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_LONG_NUMBER = re.compile(r"\d[\d,]*\.\d|\d{3,}")
_NUMBER = re.compile(r"\d+")


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def prompt_text(raw: str) -> tuple[str | None, str]:
    """(normalised text, '') for a usable prompt, or (None, reason) for a dropped one."""
    raw = raw.strip()
    if not raw:
        return None, "empty text"
    spoken = _ASIDES.sub(" ", raw).strip()
    if not spoken:
        return None, f"non-speech prompt {raw}"
    if _LONG_NUMBER.search(spoken):
        return None, f"number with several readings in {spoken!r}"
    spoken = spoken.replace("*", " star ").replace("#", " pound ")
    spoken = _NUMBER.sub(lambda m: f" {number_to_words(int(m.group()))} ", spoken)
    try:
        text = normalize_text(spoken)
    except ValueError as e:
        return None, str(e)
    return (text, "") if text else (None, "empty after normalisation")


def build_text_list_manifest(list_file: str | Path, audio_dir: str | Path, out: str | Path,
                             extension: str = ".wav", quiet: bool = False) -> tuple[Path, list[dict]]:
    """A manifest of ``audio_dir/<name><extension>`` for each ``name: text`` line of
    ``list_file`` (``;`` comments allowed, gzip read transparently); returns the manifest and
    the dropped prompts, which are also written next to it as ``<stem>.dropped.jsonl``."""
    list_file, audio_dir, out = Path(list_file), Path(audio_dir), Path(out)
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: text list not found; for the Asterisk prompts: {INSTALL_HINT}")
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: audio folder not found; for the Asterisk prompts: {INSTALL_HINT}")
    utterances: list[Utterance] = []
    dropped: list[dict] = []
    with _open_text(list_file) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            name, sep, raw = line.partition(":")
            name = name.strip()
            if not sep or not name:
                dropped.append({"line": lineno, "name": name, "reason": f"expected 'name: text', got {line.strip()!r}"})
                continue
            text, reason = prompt_text(raw)
            path = audio_dir / f"{name}{extension}"
            if text is not None and not path.is_file():
                text, reason = None, f"audio file {path} not found"
            if text is None:
                dropped.append({"line": lineno, "name": name, "reason": reason})
                continue
            try:
                duration = audio_duration(path)
            except AudioError as e:
                dropped.append({"line": lineno, "name": name, "reason": str(e)})
                continue
            utterances.append(Utterance(str(path.resolve()), text, duration, "asterisk", {"prompt": name},
                                        line=lineno))
    if not utterances:
        raise ValueError(f"{list_file}: no usable prompts (all {len(dropped)} dropped)")
    manifest = write_manifest(out, utterances)
    atomic_write_text(out.with_name(f"{out.stem}.dropped.jsonl"),
                      "".join(json.dumps({"file": str(list_file), **d}) + "\n" for d in dropped))
    if not quiet:
        minutes = sum(u.duration for u in utterances) / 60
        print(f"{list_file}: {len(utterances)} prompts ({minutes:.1f} min) -> {manifest}; "
              f"{len(dropped)} dropped -> {out.with_name(f'{out.stem}.dropped.jsonl')}")
        for d in dropped[:10]:
            print(f"  dropped {list_file.name}:{d['line']} {d['name']}: {d['reason']}", file=sys.stderr)
        if len(dropped) > 10:
            print(f"  ... {len(dropped) - 10} more in the .dropped.jsonl file", file=sys.stderr)
    return manifest, dropped


def build_asterisk_manifest(out: str | Path, texts: str | Path = TEXTS, sounds: str | Path = SOUNDS,
                            quiet: bool = False) -> tuple[Path, list[dict]]:
    """The installed Asterisk English prompts as an evaluation manifest (see the module doc)."""
    return build_text_list_manifest(texts, sounds, out, ".wav", quiet)
