"""A small corpus in the layout of the Free Spoken Digit Dataset, synthesized offline.

The tests use ``../shared/data/fsdd`` when it is there. A clone without it (a new user,
a CI machine) gets this stand-in instead, so the training, resume, export, transcription
and data-parallel tests run everywhere rather than skip: the ten digits spoken by six
"speakers" (Debian's flite, festival and espeak-ng voices, which scripts/setup.sh
installs), each take a copy of its speaker's recording with its own speed (which moves
pitch and tempo together, like a person speaking faster or higher), loudness, background
noise and silence around it. 8 kHz mono 16-bit WAV, ``recordings/<digit>_<speaker>_<take>.wav``
and a ``manifest.csv`` with FSDD's columns (path, transcript, speaker, split, duration;
takes 0-4 are ``test`` as in FSDD's official split).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from deepspeech2.data.mini import INSTALL_HINT, VOICES, synthesize, usable_voices
from deepspeech2.text import number_to_words

SAMPLE_RATE = 8000
# Speaker names are letters only, as FSDD's file-name pattern <digit>_<speaker>_<take> needs.
SPEAKERS = {
    "alan": "flite-awb",
    "sally": "flite-slt",
    "rick": "flite-rms",
    "kevin": "festival-kal",
    "moira": "espeak-en-gb-scotland+m7-p45-s150",
    "flora": "espeak-en-us+f2-p70-s150",
}
MIN_SPEAKERS = 4


def _take(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    speed = rng.uniform(0.85, 1.2)
    audio = soxr.resample(base, SAMPLE_RATE * speed, SAMPLE_RATE).astype(np.float32)
    audio *= rng.uniform(0.25, 0.9) / max(float(np.abs(audio).max()), 1e-6)
    lead, tail = (int(rng.uniform(0.0, 0.08) * SAMPLE_RATE) for _ in range(2))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)])
    signal_rms = float(np.sqrt(np.mean(audio**2)))
    noise_rms = signal_rms / 10 ** (rng.uniform(25, 40) / 20)
    audio += rng.normal(0.0, noise_rms, audio.shape).astype(np.float32)
    return np.clip(audio, -1.0, 32767 / 32768)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    # The wave module, not soundfile: libsndfile syncs every file to disk on close (3 ms each).
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((audio * 32768).round().clip(-32768, 32767).astype("<i2").tobytes())


def build_synthetic_fsdd(root: str | os.PathLike, takes: int = 20, seed: int = 0) -> Path:
    """Write the corpus under ``root`` (reused when its manifest.csv exists); return ``root``.

    Raises RuntimeError (with the apt-get line) when fewer than four of the voices exist.
    """
    root = Path(root)
    if (root / "manifest.csv").is_file():
        return root
    by_name = {v.name: v for v in VOICES}
    usable, dropped = usable_voices([by_name[v] for v in SPEAKERS.values()])
    usable_names = {v.name for v in usable}
    speakers = {s: by_name[v] for s, v in SPEAKERS.items() if v in usable_names}
    if len(speakers) < MIN_SPEAKERS:
        raise RuntimeError(f"the synthetic FSDD stand-in needs {MIN_SPEAKERS} of the TTS voices "
                           f"{sorted(SPEAKERS.values())}; missing: {dropped}. Install: {INSTALL_HINT}")
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "recordings").mkdir(parents=True)
    pairs = [(digit, speaker) for digit in range(10) for speaker in speakers]

    def speak(pair: tuple[int, str]) -> np.ndarray:
        digit, speaker = pair
        path = staging / "base" / f"{digit}_{speaker}.wav"
        synthesize(number_to_words(digit).lower(), speakers[speaker], path, SAMPLE_RATE)
        return sf.read(path, dtype="float32")[0]

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        bases = dict(zip(pairs, pool.map(speak, pairs), strict=True))
    shutil.rmtree(staging / "base")
    rows = []
    for (digit, speaker), base in bases.items():
        for take in range(takes):
            rng = np.random.default_rng([seed, digit, list(speakers).index(speaker), take])
            audio = _take(base, rng)
            name = f"recordings/{digit}_{speaker}_{take}.wav"
            _write_wav(staging / name, audio)
            rows.append([name, number_to_words(digit), speaker, "test" if take < 5 else "train",
                         f"{len(audio) / SAMPLE_RATE:.3f}"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "transcript", "speaker", "split", "duration"])
    writer.writerows(rows)
    (staging / "manifest.csv").write_text(buf.getvalue())
    shutil.rmtree(root, ignore_errors=True)
    os.replace(staging, root)
    return root
