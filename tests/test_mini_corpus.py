"""Sentence generator and the synthetic mini corpus built with the Debian TTS engines."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepspeech2.data import mini
from deepspeech2.data.manifest import read_manifest
from deepspeech2.data.mini import (
    HELD_OUT_VOICE,
    SPLITS,
    VOICES,
    Voice,
    assign_splits,
    build_mini_corpus,
    read_sentences,
    synthesize,
    trim_silence,
    usable_voices,
)
from deepspeech2.data.sentences import VOCABULARY, generate_sentences, max_sentences

needs_tts = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                               reason="needs flite and espeak-ng (apt-get install flite espeak-ng)")


# --- sentence generator ----------------------------------------------------------------------


def test_generate_sentences_is_deterministic_and_unique() -> None:
    first = generate_sentences(3000, seed=0)
    assert first == generate_sentences(3000, seed=0)
    assert first != generate_sentences(3000, seed=1)
    assert len(set(first)) == 3000


def test_held_out_sentences_stay_the_same_when_the_training_set_grows() -> None:
    # The quickstart's figures compare corpora of 3,000 and 6,000 training sentences: only
    # on the same dev and test sentences, none of them ever in train.
    sentences = [f"S{i}" for i in range(40)]
    small = assign_splits(sentences, 5, 3, 4, 6, held_out_after=5)
    large = assign_splits(sentences, 12, 3, 4, 6, held_out_after=5)
    assert small["dev"] == large["dev"] == ["S5", "S6", "S7"]
    assert small["test"] == large["test"] == ["S8", "S9", "S10", "S11"]
    assert large["test-unseen-voice"] == ["S8", "S9", "S10", "S11", "S12", "S13"]
    assert large["train"][:5] == small["train"] == ["S0", "S1", "S2", "S3", "S4"]
    assert large["train"][5:] == [f"S{i}" for i in range(14, 21)]
    held_out = set(large["dev"]) | set(large["test-unseen-voice"])
    assert not held_out & set(large["train"]) and len(set(large["train"])) == 12
    # Below the threshold the layout is train | dev | test | extra, as it always was.
    assert assign_splits(sentences, 3, 2, 2, 2, held_out_after=5) == {
        "train": ["S0", "S1", "S2"], "dev": ["S3", "S4"], "test": ["S5", "S6"],
        "test-unseen-voice": ["S5", "S6"]}
    with pytest.raises(ValueError, match="21 requested"):
        assign_splits(sentences[:20], 12, 3, 4, 6, held_out_after=5)


def test_generate_sentences_alphabet_length_and_vocabulary() -> None:
    sentences = generate_sentences(2000, seed=3)
    assert 200 <= len(VOCABULARY) <= 1000
    used = set()
    for sentence in sentences:
        assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", sentence), sentence
        assert 3 <= len(sentence.split()) <= 10, sentence
        used.update(sentence.split())
    assert used <= VOCABULARY
    assert any("'" in s for s in sentences)  # the apostrophe is part of the alphabet


def test_generate_sentences_rejects_impossible_requests() -> None:
    assert generate_sentences(0) == []
    with pytest.raises(ValueError):
        generate_sentences(-1)
    with pytest.raises(ValueError, match="unique sentences"):
        generate_sentences(max_sentences() + 1)


# --- audio helpers ---------------------------------------------------------------------------


def test_trim_silence_keeps_a_short_margin() -> None:
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr).astype(np.float32)
    audio = np.concatenate([np.zeros(sr, np.float32), tone, np.zeros(2 * sr, np.float32)])
    trimmed = trim_silence(audio, sr)
    assert abs(len(trimmed) / sr - 1.2) < 0.02
    assert trim_silence(np.zeros(sr, np.float32), sr).size == 0


def test_read_sentences_normalises_and_skips(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("utt1\tHello, world!\n"
                    "Call Mary at 5.\n"
                    "\n"
                    "hello world\n"
                    "\u65e5\u672c\u8a9e\n"
                    + " ".join(["word"] * 20) + "\n", encoding="utf-8")
    sentences, skipped = read_sentences(text)
    assert sentences == ["HELLO WORLD", "CALL MARY AT FIVE"]
    assert skipped == {"duplicate": 1, "unsupported characters": 1, "too long": 1}


# --- synthesis and corpus build --------------------------------------------------------------


@needs_tts
def test_voice_list_is_installed() -> None:
    usable, dropped = usable_voices()
    assert HELD_OUT_VOICE in {v.name for v in usable}
    if not mini.check_tts_available():
        assert not dropped, dropped
    assert len({v.name for v in VOICES}) == len(VOICES)


@needs_tts
def test_synthesize_error_names_engine_and_command(tmp_path: Path) -> None:
    if shutil.which("text2wave") is None:
        pytest.skip("festival not installed")
    bogus = Voice("festival-bogus", "festival", ("-eval", "(voice_no_such_voice)"))
    with pytest.raises(RuntimeError, match="festival failed.*text2wave"):
        synthesize("HELLO", bogus, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_missing_engines_give_the_install_command(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mini.shutil, "which", lambda program: None)
    assert set(mini.check_tts_available()) >= {"flite", "espeak-ng"}
    with pytest.raises(RuntimeError, match="apt-get install -y flite festival"):
        build_mini_corpus(tmp_path, num_train=1, num_dev=0, num_test=0, num_test_unseen=0)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("flite") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs flite and espeak-ng")
    out = tmp_path_factory.mktemp("mini")
    n_train_voices = len(usable_voices()[0]) - 1
    build_mini_corpus(out, num_train=n_train_voices, num_dev=2, num_test=2, num_test_unseen=2,
                      jobs=2, progress=False)
    return out


def test_tiny_corpus_layout_and_audio(tiny_corpus: Path) -> None:
    summary = json.loads((tiny_corpus / "corpus.json").read_text())
    held_out = summary["held_out_voice"]
    train_voices = {v["name"] for v in summary["voices"]} - {held_out}
    sizes = {"train": len(train_voices), "dev": 2, "test": 2, "test-unseen-voice": 2}
    texts = {}
    for split in SPLITS:
        utts = read_manifest(tiny_corpus / f"{split}.jsonl")
        assert len(utts) == sizes[split] == summary["splits"][split]["utterances"]
        texts[split] = {u.text for u in utts}
        for utt in utts:
            path = Path(utt.path)
            assert path.parent.parent == tiny_corpus / "wav" / split
            assert path.parent.name == utt.speaker
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.duration > 0.3
            assert abs(info.duration - utt.duration) < 1e-3
        speakers = {u.speaker for u in utts}
        if split == "test-unseen-voice":
            assert speakers == {held_out}
        else:
            assert held_out not in speakers
            assert speakers <= train_voices
    # Round robin: a split with as many sentences as voices has every voice once.
    assert {u.speaker for u in read_manifest(tiny_corpus / "train.jsonl")} == train_voices
    assert not texts["train"] & texts["test"]
    assert not texts["train"] & texts["dev"]
    assert not texts["dev"] & texts["test"]
    assert not texts["train"] & texts["test-unseen-voice"]
    assert summary["splits"]["train"]["hours"] > 0


def test_tiny_corpus_rerun_does_no_synthesis(tiny_corpus: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(tiny_corpus.rglob("*.wav")) + sorted(tiny_corpus.glob("*.json*"))
    before = {f: f.stat().st_mtime_ns for f in files}

    def fail(*args: object, **kwargs: object) -> float:
        raise AssertionError("synthesize called on a finished corpus")

    monkeypatch.setattr(mini, "synthesize", fail)
    n_train_voices = len(usable_voices()[0]) - 1
    manifests = build_mini_corpus(tiny_corpus, num_train=n_train_voices, num_dev=2, num_test=2,
                                  num_test_unseen=2, jobs=2, progress=False)
    assert set(manifests) == set(SPLITS)
    assert {f: f.stat().st_mtime_ns for f in files} == before


@needs_tts
def test_interrupted_build_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voices = [v for v in VOICES if v.name in {"flite-kal16", "espeak-en-us-p50-s160",
                                              HELD_OUT_VOICE}]
    kwargs = dict(num_train=4, num_dev=2, num_test=2, num_test_unseen=3, jobs=2,
                  progress=False, voices=voices)
    build_mini_corpus(tmp_path, **kwargs)
    train = read_manifest(tmp_path / "train.jsonl")
    # Every training voice appears in every split; unseen-voice reuses the test sentences.
    for split in ("train", "dev", "test"):
        assert len({u.speaker for u in read_manifest(tmp_path / f"{split}.jsonl")}) == 2
    test_texts = [u.text for u in read_manifest(tmp_path / "test.jsonl")]
    unseen_texts = [u.text for u in read_manifest(tmp_path / "test-unseen-voice.jsonl")]
    assert unseen_texts[:2] == test_texts and unseen_texts[2] not in {u.text for u in train}

    # Simulate a crash: one wav and the manifest are gone.
    Path(train[1].path).unlink()
    (tmp_path / "train.jsonl").unlink()
    calls = []
    real = mini.synthesize

    def counting(text: str, voice: Voice, out_path: Path, sample_rate: int = 16000) -> float:
        calls.append(text)
        return real(text, voice, out_path, sample_rate)

    monkeypatch.setattr(mini, "synthesize", counting)
    build_mini_corpus(tmp_path, **kwargs)
    assert calls == [train[1].text]
    assert read_manifest(tmp_path / "train.jsonl") == train


@needs_tts
def test_build_from_text_file(tmp_path: Path) -> None:
    text = tmp_path / "lines.txt"
    text.write_text("a\tTurn on the lights.\nb\tIt's 7 o'clock!\nc\tOpen the door\n"
                    "d\tGood morning Sam\ne\tCaf\u00e9 au lait\nf\tWhat time is it\n",
                    encoding="utf-8")
    voices = [v for v in VOICES if v.name in {"flite-slt", HELD_OUT_VOICE}]
    manifests = build_mini_corpus(tmp_path / "corpus", text_file=text, num_train=3, num_dev=1,
                                  num_test=2, num_test_unseen=1, progress=False, voices=voices)
    texts = {split: [u.text for u in read_manifest(path)] for split, path in manifests.items()}
    all_texts = texts["train"] + texts["dev"] + texts["test"]
    assert sorted(all_texts) == sorted(["TURN ON THE LIGHTS", "IT'S SEVEN O'CLOCK",
                                        "OPEN THE DOOR", "GOOD MORNING SAM",
                                        "CAFE AU LAIT", "WHAT TIME IS IT"])
    assert texts["test-unseen-voice"][0] in texts["test"]
    with pytest.raises(ValueError, match="usable unique sentences"):
        build_mini_corpus(tmp_path / "too-small", text_file=text, num_train=10, num_dev=0,
                          num_test=0, num_test_unseen=0, progress=False, voices=voices)
