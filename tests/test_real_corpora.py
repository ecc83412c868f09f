"""Real-speech importers: speechocean762, AN4 (shared copies and downloads over 127.0.0.1), Asterisk lists."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SHARED_DATA as SHARED
from deepspeech2.cli import main as ds2
from deepspeech2.data.asterisk import build_text_list_manifest, prompt_text
from deepspeech2.data.manifest import read_manifest
from deepspeech2.data.speechocean762 import CorpusError, scan_speechocean762
from test_librispeech import RangeServer, write_archive


def _audio(fmt: str, seconds: float = 0.5, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000, format=fmt,
             subtype="PCM_16")
    return buf.getvalue()


def _compact_copy(name: str, tmp_path: Path, speakers: int, test_speakers: int, extra: str = "") -> Path:
    """``../shared/data/<name>`` when this machine has it, else a small copy in the same layout
    (``manifest.csv`` + audio, 2 utterances a speaker): the importer runs either way."""
    if (SHARED / name / "manifest.csv").is_file():
        return SHARED / name
    root = tmp_path / name
    (root / "audio").mkdir(parents=True)
    rows = ["path,transcript,speaker,split,duration" + (",age,gender" if extra else "")]
    for k in range(speakers + test_speakers):
        split = "train" if k < speakers else "test"
        for j in range(2):
            rel = f"audio/{k:04d}{j}.wav"
            (root / rel).write_bytes(_audio("WAV", 0.3, seed=k * 2 + j))
            rows.append(f"{rel},WE CALL IT BEAR,{k:04d},{split},0.300" + (extra if extra else ""))
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _split_counts(root: Path) -> dict[str, int]:
    lines = (root / "manifest.csv").read_text().splitlines()[1:]
    return {s: sum(line.split(",")[3] == s for line in lines) for s in ("train", "test")}


def test_shared_speechocean762_splits_by_speaker(tmp_path, capsys):
    root = _compact_copy("speechocean762", tmp_path, speakers=40, test_speakers=5, extra=",6,m")
    real = root == SHARED / "speechocean762"
    assert ds2(["data", "speechocean762", "--root", str(root), "--out", str(tmp_path / "out")]) in (0, None)
    splits = {s: read_manifest(tmp_path / "out" / f"{s}.jsonl") for s in ("train", "dev", "test")}
    counts = _split_counts(root)
    assert len(splits["train"]) + len(splits["dev"]) == counts["train"] and len(splits["test"]) == counts["test"]
    if real:
        assert counts == {"train": 2500, "test": 2500}
    speakers = {s: {u.speaker for u in utts} for s, utts in splits.items()}
    assert not speakers["train"] & speakers["dev"] and not speakers["test"] & (speakers["train"] | speakers["dev"])
    assert (5 <= len(speakers["dev"]) <= 8) if real else len(speakers["dev"]) == 2  # every 20th training speaker
    first = splits["train"][0]
    assert Path(first.path).is_file() and first.text.isupper() and first.extra["age"]
    assert (f"speechocean762 test: {counts['test']} utterances, {len(speakers['test'])} speakers"
            in capsys.readouterr().out)
    if real:
        assert len(speakers["test"]) == 125


def test_shared_an4(tmp_path):
    root = _compact_copy("an4", tmp_path, speakers=30, test_speakers=0)
    real = root == SHARED / "an4"
    assert ds2(["data", "an4", "--root", str(root), "--out", str(tmp_path / "out")]) in (0, None)
    train, dev = read_manifest(tmp_path / "out" / "train.jsonl"), read_manifest(tmp_path / "out" / "dev.jsonl")
    assert len(train) + len(dev) == _split_counts(root)["train"]
    assert (len(train) + len(dev) == 948 and 40 <= len(dev) <= 90) if real else len(dev) == 4  # every 15th speaker
    assert not {u.speaker for u in train} & {u.speaker for u in dev}


def test_speechocean762_download_in_the_published_layout(tmp_path):
    members: dict[str, bytes | None] = {}
    for split, speaker, utts in (("train", "0001", ["000010011", "000010035"]), ("test", "0003", ["000030012"])):
        members[f"speechocean762/{split}/text"] = "".join(
            f"{u} WE CALL IT BEAR\n" for u in utts).encode()
        members[f"speechocean762/{split}/wav.scp"] = "".join(
            f"{u}\tWAVE/SPEAKER{speaker}/{u}.WAV\n" for u in utts).encode()
        for i, u in enumerate(utts):
            members[f"speechocean762/WAVE/SPEAKER{speaker}/{u}.WAV"] = _audio("WAV", seed=i)
    served = tmp_path / "served"
    write_archive(served / "speechocean762.tar.gz", members)
    server = RangeServer(served)
    try:
        root, out = tmp_path / "so762", tmp_path / "manifests"
        assert ds2(["data", "speechocean762", "--download", "--root", str(root), "--out", str(out),
                    "--url", server.url + "speechocean762.tar.gz"]) in (0, None)
        test = read_manifest(out / "test.jsonl")
        assert [(u.text, u.speaker, round(u.duration, 2)) for u in test] == [("WE CALL IT BEAR", "0003", 0.5)]
        assert len(read_manifest(out / "train.jsonl")) + len(read_manifest(out / "dev.jsonl")) == 2
        # A second run finds the corpus and downloads nothing.
        requests = len(server.log)
        assert ds2(["data", "speechocean762", "--download", "--root", str(root), "--out", str(out),
                    "--url", server.url + "speechocean762.tar.gz"]) in (0, None)
        assert len(server.log) == requests
    finally:
        server.close()


def test_an4_download_in_cmu_layout_reads_sphere_audio(tmp_path):
    members: dict[str, bytes | None] = {
        "an4/etc/an4_train.transcription": b"<s> YES </s> (an251-fash-b)\n<s> P I T T S B U R G H </s> (cen1-fash-b)\n",
        "an4/etc/an4_test.transcription": b"<s> ENTER SIX TWO FOUR </s> (an406-fcaw-b)\n",
        "an4/wav/an4_clstk/fash/an251-fash-b.sph": _audio("NIST", 0.5, 1),
        "an4/wav/an4_clstk/fash/cen1-fash-b.sph": _audio("NIST", 1.0, 2),
        "an4/wav/an4test_clstk/fcaw/an406-fcaw-b.sph": _audio("NIST", 0.75, 3),
    }
    served = tmp_path / "served"
    write_archive(served / "an4_sphere.tar.gz", members)
    server = RangeServer(served)
    try:
        out = tmp_path / "manifests"
        assert ds2(["data", "an4", "--download", "--root", str(tmp_path / "an4"), "--out", str(out),
                    "--url", server.url + "an4_sphere.tar.gz"]) in (0, None)
    finally:
        server.close()
    train = read_manifest(out / "train.jsonl") + read_manifest(out / "dev.jsonl")
    assert sorted((u.text, round(u.duration, 2)) for u in train) == [("P I T T S B U R G H", 1.0), ("YES", 0.5)]
    assert [(u.text, u.speaker) for u in read_manifest(out / "test.jsonl")] == [("ENTER SIX TWO FOUR", "fcaw")]


def test_bad_corpus_folders_are_named(tmp_path):
    with pytest.raises(CorpusError, match=f"{tmp_path}: neither manifest.csv nor train/wav.scp"):
        scan_speechocean762(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "text").write_text("000010011 HELLO\n")
    (tmp_path / "train" / "wav.scp").write_text("000010011 WAVE/SPEAKER0001/000010011.WAV\n")
    (tmp_path / "test").mkdir()
    with pytest.raises(CorpusError, match=r"train/wav.scp:1: audio file .*000010011.WAV not found"):
        scan_speechocean762(tmp_path)


@pytest.mark.parametrize("raw, expected", [
    ("Please press 1 to mute, or # to exit.", "PLEASE PRESS ONE TO MUTE OR POUND TO EXIT"),
    ("press * to toggle pause", "PRESS STAR TO TOGGLE PAUSE"),
    ("at [@]", "AT"),
    ("3D audio enabled", "THREE D AUDIO ENABLED"),
    ("[this is a simple beep tone]", None),
    ("(10 seconds of silence)", None),  # the audio is silence: its reference must not be these words
    ('IAX (note: does not say "2")', "IAX"),
    ("Please leave your message after the tone. (simple tone sound plays)",
     "PLEASE LEAVE YOUR MESSAGE AFTER THE TONE"),
    ("dial 1234 now", None),
    ("a 28.8 kilobit modem", None),
])
def test_prompt_texts(raw, expected):
    text, reason = prompt_text(raw)
    assert text == expected
    assert bool(reason) == (expected is None)


def test_name_text_list_drops_and_reports(tmp_path, capsys):
    sounds = tmp_path / "sounds"
    (sounds / "digits").mkdir(parents=True)
    for name in ("welcome", "digits/5", "beep", "long"):
        (sounds / f"{name}.wav").write_bytes(_audio("WAV", 0.3))
    listing = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(listing, "wt") as f:
        f.write("; Core sounds\n\nwelcome: Welcome!\ndigits/5: five\nbeep: [a beep]\nlong: dial 1234\n"
                "gone: not recorded\nno colon here\n")
    out = tmp_path / "asterisk" / "asterisk.jsonl"
    assert ds2(["data", "asterisk", "--texts", str(listing), "--sounds", str(sounds), "--out", str(out.parent)]) in (
        0, None)
    utts = read_manifest(out)
    assert [(u.text, u.extra["prompt"]) for u in utts] == [("WELCOME", "welcome"), ("FIVE", "digits/5")]
    dropped = [line for line in out.with_name("asterisk.dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 4
    report = capsys.readouterr()
    assert "2 prompts" in report.out and "4 dropped" in report.out
    assert "non-speech prompt [a beep]" in report.err and "gone.wav not found" in report.err
    assert "expected 'name: text'" in report.err
    with pytest.raises(FileNotFoundError, match="apt-get install -y asterisk-core-sounds-en-wav"):
        build_text_list_manifest(tmp_path / "missing.txt.gz", sounds, out)
