"""Manifest formats: this project's JSONL, deepspeech.pytorch's JSON and the MindSpore
course's ``wav,txt`` CSV, read, written and converted into each other."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tiny_config
from deepspeech2.cli import main as ds2
from deepspeech2.data.dataset import SkipReport, load_dataset
from deepspeech2.data.features import FeatureCache
from deepspeech2.data.formats import convert, detect_format, read_any, read_any_manifest, write_any
from deepspeech2.data.manifest import ManifestError, Utterance, read_manifest, write_manifest

TEXTS = ["HELLO WORLD", "IT'S A GOOD DAY", "DEEP SPEECH"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Three WAVs in two folders (one with a LibriSpeech-style name) and their JSONL manifest."""
    rng = np.random.default_rng(0)
    names = ["audio/a/one.wav", "audio/b/19-198-0001.wav", "audio/b/three.wav"]
    utts = []
    for i, (name, text) in enumerate(zip(names, TEXTS, strict=True)):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = 0.5 + 0.25 * i
        sf.write(path, 0.1 * rng.standard_normal(int(16000 * seconds)), 16000, subtype="PCM_16")
        speaker, extra = ("19", {"chapter": "198"}) if i == 1 else ("spk", {})
        utts.append(Utterance(str(path), text, seconds, speaker, extra))
    return write_manifest(tmp_path / "corpus.jsonl", utts)


def _triples(utterances) -> list[tuple[str, str, float]]:
    return [(str(Path(u.path).resolve()), u.text, round(u.duration, 3)) for u in utterances]


def test_round_trip_through_all_three_formats(corpus, tmp_path, capsys):
    original = read_manifest(corpus)
    assert ds2(["data", "convert", str(corpus), str(tmp_path / "out" / "corpus.json")]) == 0
    assert ds2(["data", "convert", str(tmp_path / "out" / "corpus.json"), str(tmp_path / "out" / "corpus.csv")]) == 0
    assert ds2(["data", "convert", str(tmp_path / "out" / "corpus.csv"), str(tmp_path / "back.jsonl")]) == 0
    assert "3 utterances -> " in capsys.readouterr().out
    for path in ("out/corpus.json", "out/corpus.csv", "back.jsonl"):
        assert _triples(read_any_manifest(tmp_path / path)) == _triples(original), path
    # The LibriSpeech-style name gives speaker and chapter in formats that do not store them.
    back = read_manifest(tmp_path / "back.jsonl")
    assert (back[1].speaker, back[1].extra) == ("19", {"chapter": "198"})


def test_json_is_what_deepspeech_pytorch_reads(corpus, tmp_path):
    out = write_any(tmp_path / "m" / "train.json", read_manifest(corpus))
    data = json.loads(out.read_text())
    assert set(data) == {"root_path", "samples"} and Path(data["root_path"]).is_absolute()
    for sample, text in zip(data["samples"], TEXTS, strict=True):
        # deepspeech.pytorch's loader: os.path.join(root_path, wav_path / transcript_path)
        wav = os.path.join(data["root_path"], sample["wav_path"])
        transcript = os.path.join(data["root_path"], sample["transcript_path"])
        assert not Path(sample["wav_path"]).is_absolute() and Path(wav).is_file()
        assert open(transcript).read().replace("\n", "") == text
    # Transcript files mirror the audio folders under <manifest folder>/txt/<name>/.
    assert sorted(p.relative_to(tmp_path / "m" / "txt" / "train").as_posix()
                  for p in (tmp_path / "m" / "txt" / "train").rglob("*.txt")) == [
        "a/one.txt", "b/19-198-0001.txt", "b/three.txt"]


def test_csv_is_what_the_mindspore_course_reads(corpus, tmp_path):
    out = write_any(tmp_path / "libri_val_manifest.csv", read_manifest(corpus))
    lines = out.read_text().splitlines()
    assert len(lines) == 3  # no header
    for line, text in zip(lines, TEXTS, strict=True):
        wav, txt = line.strip().split(",")  # the course's parser
        assert Path(wav).is_absolute() and Path(wav).is_file() and Path(txt).read_text() == text


def test_reading_manifests_written_by_other_tools(corpus, tmp_path):
    utts = read_manifest(corpus)
    # deepspeech.pytorch's own layout: <root>/wav/*.wav, <root>/txt/*.txt, compact JSON, relative root.
    (tmp_path / "dsp" / "wav").mkdir(parents=True)
    (tmp_path / "dsp" / "txt").mkdir()
    samples = []
    for i, u in enumerate(utts):
        os.link(u.path, tmp_path / "dsp" / "wav" / f"{i}.wav")
        (tmp_path / "dsp" / "txt" / f"{i}.txt").write_text(u.text.lower() + "\n")
        samples.append({"wav_path": f"wav/{i}.wav", "transcript_path": f"txt/{i}.txt"})
    (tmp_path / "dsp" / "m.json").write_text(json.dumps({"root_path": ".", "samples": samples}))
    got = read_any(tmp_path / "dsp" / "m.json")
    assert [u.text for u in got] == [t.lower() for t in TEXTS]
    assert [round(u.duration, 3) for u in got] == [0.5, 0.75, 1.0]  # from the audio headers
    # A path,text CSV with a header, relative paths; and one without a header.
    (tmp_path / "pt.csv").write_text("path,text\n" + "".join(
        f"{Path(u.path).relative_to(tmp_path)},{u.text}\n" for u in utts))
    assert _triples(read_any(tmp_path / "pt.csv")) == _triples(utts)
    (tmp_path / "plain.csv").write_text("".join(f"{u.path},{u.text}\n" for u in utts))
    assert _triples(read_any(tmp_path / "plain.csv")) == _triples(utts)
    # JSONL named .json is still JSONL.
    (tmp_path / "lines.json").write_text(corpus.read_text().replace("audio/", str(tmp_path / "audio") + "/"))
    assert detect_format(tmp_path / "lines.json") == "jsonl"
    assert _triples(read_any_manifest(tmp_path / "lines.json")) == _triples(utts)


def test_every_manifest_consumer_accepts_the_formats(corpus, tmp_path):
    cfg = tiny_config()
    cache = FeatureCache(tmp_path / "features", cfg.audio.feature_spec())
    csv_manifest, _ = convert(corpus, tmp_path / "m.csv")
    json_manifest, _ = convert(corpus, tmp_path / "m.json")
    for manifest in (corpus, csv_manifest, json_manifest):
        dataset = load_dataset(manifest, cfg, cache, SkipReport(), jobs=1)
        assert [u.text for u in dataset.utterances] == TEXTS


def test_malformed_inputs_are_named(corpus, tmp_path):
    json_manifest, _ = convert(corpus, tmp_path / "m.json")
    (tmp_path / "txt" / "m" / "a" / "one.txt").unlink()
    with pytest.raises(ManifestError, match=r"m.json: sample 0: transcript file .*one.txt not found"):
        read_any_manifest(json_manifest)
    (tmp_path / "bad.json").write_text('{"samples": []}')
    with pytest.raises(ManifestError, match="not a deepspeech.pytorch manifest"):
        read_any_manifest(tmp_path / "bad.json")
    (tmp_path / "short.csv").write_text("only-one-column\n")
    with pytest.raises(ManifestError, match="short.csv:1: expected at least 2 columns"):
        read_any_manifest(tmp_path / "short.csv")
    comma = tmp_path / "a,b.wav"
    sf.write(comma, np.zeros(1600), 16000)
    with pytest.raises(ValueError, match="comma"):
        write_any(tmp_path / "c.csv", [Utterance(str(comma), "HI", 0.1)])
    with pytest.raises(ValueError, match="cannot tell the manifest format"):
        convert(corpus, tmp_path / "out.txt")
