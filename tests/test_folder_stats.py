"""Your own data (a folder of audio + .txt, a path,text CSV), the FSDD download, and
manifest statistics."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepspeech2.cli import main as ds2
from deepspeech2.data.manifest import Utterance, read_manifest, write_manifest
from test_librispeech import RangeServer


def _wav(path: Path, seconds: float, rate: int = 16000, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, 0.2 * np.sin(2 * np.pi * 300 * t), rate, format=fmt, subtype="PCM_16")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "mine"
    _wav(root / "a.wav", 1.0)
    (root / "a.txt").write_text("HELLO WORLD\n")
    _wav(root / "alice" / "b.flac", 1.5, rate=8000, fmt="FLAC")
    (root / "alice" / "b.txt").write_text("It's 2 o'clock, isn't it?")  # normalised
    _wav(root / "c.wav", 0.5)  # no transcript
    (root / "d.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "d.txt").write_text("BROKEN AUDIO")
    _wav(root / "e.wav", 0.5)
    (root / "e.txt").write_text("SNOW ☃ MAN")  # cannot be mapped to the alphabet
    (root / "orphan.txt").write_text("NO AUDIO FOR ME")
    return root


def test_folder_import_checks_every_file(folder, capsys):
    assert ds2(["data", "folder", str(folder), "--formats", "jsonl,csv", "--jobs", "1"]) == 0
    captured = capsys.readouterr()
    utts = read_manifest(folder / "manifest.jsonl")
    assert [(Path(u.path).name, u.text, u.speaker) for u in utts] == [
        ("a.wav", "HELLO WORLD", ""), ("b.flac", "IT'S TWO O'CLOCK ISN'T IT", "alice")]
    assert [round(u.duration, 3) for u in utts] == [1.0, 1.5]
    assert (folder / "manifest.csv").read_text().count("\n") == 2
    report = {Path(r["path"]).name: r["problem"] for r in map(json.loads, open(folder / "manifest.report.jsonl"))}
    assert report["c.wav"] == "no transcript (c.txt)"
    assert report["d.wav"].startswith("cannot decode audio")
    assert "'☃'" in report["e.wav"]
    assert report["orphan.txt"] == "transcript without an audio file"
    for name in ("c.wav", "d.wav", "e.wav", "orphan.txt"):
        assert name in captured.err
    assert "1 transcripts normalised" in captured.out
    # Importing again with the json format: its transcript files are not taken for orphans.
    assert ds2(["data", "folder", str(folder), "--formats", "json", "--jobs", "1"]) == 0
    assert ds2(["data", "folder", str(folder), "--jobs", "1"]) == 0
    assert len(list(map(json.loads, open(folder / "manifest.report.jsonl")))) == 4


def test_csv_import(folder, tmp_path):
    table = tmp_path / "list.csv"
    table.write_text("path,text,speaker\nmine/a.wav,hello world,bob\nmine/alice/b.flac,\"good, day\",carol\n")
    assert ds2(["data", "folder", str(table), "--out", str(tmp_path / "list.jsonl"), "--jobs", "1"]) == 0
    utts = read_manifest(tmp_path / "list.jsonl")
    assert [(u.text, u.speaker) for u in utts] == [("HELLO WORLD", "bob"), ("GOOD DAY", "carol")]


def test_stats_reports_counts_histogram_text_and_audio_problems(tmp_path, capsys):
    utts = [Utterance(str(_wav(tmp_path / f"s{i % 3}" / f"{i}.wav", 0.5 + 0.25 * i)), "HELLO THERE", 0.0, f"s{i % 3}")
            for i in range(6)]
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    utts.append(Utterance(str(tmp_path / "broken.wav"), "BROKEN", 1.0, "s0"))
    utts.append(Utterance(utts[0].path, "MAIL ME @ HOME, café", 0.5, "s1"))
    manifest = write_manifest(tmp_path / "m.jsonl", utts)
    assert ds2(["data", "stats", str(manifest), "--json", str(tmp_path / "stats.json"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["utterances"] == 8 and stats["speakers"] == 3
    durations = [0.5 + 0.25 * i for i in range(6)] + [0.5]
    assert stats["hours"] == pytest.approx(sum(durations) / 3600)
    assert stats["duration"]["max"] == pytest.approx(1.75) and sum(stats["histogram"]["counts"]) == 7
    assert [Path(x["path"]).name for x in stats["undecodable"]] == ["broken.wav"]
    assert stats["outside_alphabet"] == {"@": 1, ",": 1, "É": 1}
    assert [x["line"] for x in stats["unmappable"]] == [8] and "'@'" in stats["unmappable"][0]["reason"]
    assert Path(stats["png"]).read_bytes()[:4] == b"\x89PNG"
    assert "utterances: 8" in out and "broken.wav" in out and "'@' x1" in out and "hours:" in out


@pytest.fixture
def fsdd_archive(tmp_path, fsdd_root) -> tuple[Path, int]:
    """A few FSDD recordings in the layout of the GitHub repository's archive."""
    rows = list(csv.DictReader(open(fsdd_root / "manifest.csv")))
    picked = [r["path"] for r in rows if Path(r["path"]).stem.split("_")[2] in ("0", "5", "12")][:27]
    archive = tmp_path / "served" / "fsdd.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("free-spoken-digit-dataset-master/README.md"), io.BytesIO(b""))
        for path in picked:
            tar.add(fsdd_root / path, f"free-spoken-digit-dataset-master/recordings/{Path(path).name}")
    return archive, len(picked)


def test_fsdd_download(fsdd_archive, tmp_path, capsys):
    archive, count = fsdd_archive
    server = RangeServer(archive.parent)
    try:
        args = ["data", "fsdd", "--download", "--url", server.url + "fsdd.tar.gz", "--root", str(tmp_path / "fsdd"),
                "--out", str(tmp_path / "manifests")]
        assert ds2(args) == 0
        assert len(list((tmp_path / "fsdd" / "recordings").glob("*.wav"))) == count
        sizes = {s: len(read_manifest(tmp_path / "manifests" / f"{s}.jsonl")) for s in ("train", "dev", "test")}
        assert sum(sizes.values()) == count and all(sizes.values())
        assert ds2(args) == 0  # already there: no second download
        assert len(server.log) == 1 and "already has recordings" in capsys.readouterr().out
    finally:
        server.close()
