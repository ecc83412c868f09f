"""LibriSpeech preparation against archives in the exact OpenSLR layout, served over HTTP
on 127.0.0.1: full prepare, resumed download, checksum mismatch, unsafe members, a
truncated archive, bad utterances, reruns that do no work, and the whole recipe."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tiny_config
from deepspeech2.cli import main as ds2
from deepspeech2.config import save_config
from deepspeech2.data.download import ArchiveError, ChecksumError, DownloadError, download, safe_extract
from deepspeech2.data.formats import read_any_manifest
from deepspeech2.data.librispeech import (
    SUBSETS,
    LibriSpeechError,
    SubsetResult,
    _print_summary,
    parse_subsets,
    prepare_librispeech,
    resolve_base_url,
)
from deepspeech2.data.manifest import read_manifest

WORDS = "THE A CAT SAT ON MAT IT'S HELLO WORLD SPEECH DEEP GOOD MORNING NIGHT RED BLUE".split()


# --- a loopback HTTP server with Range support that can cut a transfer midway ----------------


class RangeServer:
    """Serves ``directory`` on 127.0.0.1 with ``Range: bytes=N-`` support. ``cut[name] = n``
    closes the connection after n body bytes of the next response for ``name``. ``log``
    lists (path, Range header) per request; ``sent`` counts body bytes."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.log: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                name = self.path.lstrip("/")
                server.log.append((name, self.headers.get("Range")))
                path = server.directory / name
                if ".." in Path(name).parts or not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                limit = server.cut.pop(name, None)
                with open(path, "rb") as f:
                    f.seek(start)
                    remaining = size - start if limit is None else min(limit, size - start)
                    while remaining > 0:
                        block = f.read(min(1 << 16, remaining))
                        self.wfile.write(block)
                        server.sent += len(block)
                        remaining -= len(block)
                if limit is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the cut: EOF before Content-Length

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- archives in the LibriSpeech layout -------------------------------------------------------


def synthetic_flac(seconds: float, rng: np.random.Generator, sample_rate: int = 16000) -> bytes:
    """A tone with a little noise, as 16-bit FLAC bytes."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(120, 400) * t) + 0.01 * rng.standard_normal(len(t))
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def librispeech_members(subset: str, chapters: dict[tuple[int, int], int], seed: int = 0,
                        seconds: tuple[float, float] = (1.1, 2.0),
                        overrides: dict[str, float] | None = None) -> tuple[dict[str, bytes | None], dict]:
    """Archive members {name: bytes, or None for a folder} for ``subset`` with ``n``
    utterances per (speaker, chapter); returns (members, {id: (text, seconds)})."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes | None] = {"LibriSpeech/": None, f"LibriSpeech/{subset}/": None}
    truth = {}
    for (speaker, chapter), count in chapters.items():
        folder = f"LibriSpeech/{subset}/{speaker}/{chapter}"
        members.setdefault(f"LibriSpeech/{subset}/{speaker}/", None)
        members[folder + "/"] = None
        lines = []
        for i in range(count):
            utt = f"{speaker}-{chapter}-{i:04d}"
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5))))
            duration = (overrides or {}).get(utt, round(float(rng.uniform(*seconds)), 3))
            members[f"{folder}/{utt}.flac"] = synthetic_flac(duration, rng)
            lines.append(f"{utt} {text}")
            truth[utt] = (text, duration)
        members[f"{folder}/{speaker}-{chapter}.trans.txt"] = ("\n".join(lines) + "\n").encode()
    members["LibriSpeech/README.TXT"] = b"LibriSpeech ASR corpus (synthetic test copy)\n"
    members["LibriSpeech/SPEAKERS.TXT"] = b"; ID | SEX | SUBSET | MINUTES | NAME\n"
    return members, truth


def write_archive(path: Path, members: dict[str, bytes | None], links: dict[str, str] | None = None) -> Path:
    """A .tar.gz of ``members`` (and symbolic ``links`` name -> target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 1_200_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_checksums(folder: Path) -> Path:
    lines = [f"{md5(p)}  {p.name}\n" for p in sorted(folder.glob("*.tar.gz"))]
    path = folder / "md5sum.txt"
    path.write_text("".join(lines))
    return path


LAYOUT = {
    "train-clean-100": {(19, 198): 4, (19, 227): 3, (26, 495): 5},
    "dev-clean": {(84, 121123): 2, (174, 50561): 2},
    "dev-other": {(116, 288045): 4},
    "test-clean": {(61, 70968): 2, (121, 121726): 2},
    "test-other": {(367, 130732): 4},
}
SHORT = "26-495-0004"  # 0.5 s: below the 1 s training minimum


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """The five default subsets as archives under good/, with their transcripts."""
    served = tmp_path_factory.mktemp("served")
    truth = {}
    for i, (subset, chapters) in enumerate(LAYOUT.items()):
        members, truth[subset] = librispeech_members(subset, chapters, seed=i, overrides={SHORT: 0.5})
        write_archive(served / "good" / f"{subset}.tar.gz", members)
    return {"served": served, "truth": truth, "checksums": write_checksums(served / "good")}


@pytest.fixture(scope="module")
def server(corpus):
    srv = RangeServer(corpus["served"])
    yield srv
    srv.close()


def _cli(root: Path, server: RangeServer, checksums: Path, subsets: str, *extra: str, folder: str = "good") -> int:
    return ds2(["data", "librispeech", "--root", str(root), "--subsets", subsets, "--base-url", server.url + folder,
                "--checksums", str(checksums), "--jobs", "1", *extra])


@pytest.fixture(scope="module")
def prepared(corpus, server, tmp_path_factory) -> Path:
    """The five subsets prepared once, in all three formats, decoding on 2 processes."""
    root = tmp_path_factory.mktemp("librispeech")
    assert ds2(["data", "librispeech", "--root", str(root), "--base-url", server.url + "good/", "--checksums",
                str(corpus["checksums"]), "--formats", "jsonl,json,csv", "--jobs", "2"]) == 0
    return root


def _by_id(utterances) -> dict[str, tuple[str, float]]:
    return {Path(u.path).stem: (u.text, u.duration) for u in utterances}


# --- the tests --------------------------------------------------------------------------------


def test_full_prepare_matches_the_archives_in_all_formats(prepared, corpus):
    for subset, truth in corpus["truth"].items():
        expected = {k: v for k, v in truth.items() if not (subset.startswith("train") and k == SHORT)}
        for fmt in ("jsonl", "json", "csv"):
            utts = read_any_manifest(prepared / f"{subset}.{fmt}")
            got = _by_id(utts)
            assert sorted(got) == sorted(expected), (subset, fmt)
            for utt_id, (text, seconds) in expected.items():
                assert got[utt_id][0] == text
                assert got[utt_id][1] == pytest.approx(seconds, abs=1e-3)
            for u in utts:
                assert Path(u.path).is_file() and u.path.endswith(".flac")
                assert u.speaker == Path(u.path).stem.split("-")[0]
        state = json.loads((prepared / f"{subset}.prepared.json").read_text())
        assert state["counts"]["in_archive"] == len(truth)
        assert state["counts"]["utterances"] == len(expected)
    # JSONL paths are relative to the root, so the prepared folder can be moved.
    first = json.loads((prepared / "dev-clean.jsonl").read_text().splitlines()[0])
    assert first["path"].startswith("LibriSpeech/dev-clean/") and first["chapter"] == "121123"
    # deepspeech.pytorch's JSON and the course's CSV point at transcript files.
    data = json.loads((prepared / "test-other.json").read_text())
    sample = data["samples"][0]
    assert Path(data["root_path"], sample["transcript_path"]).read_text() == corpus["truth"]["test-other"][
        Path(sample["wav_path"]).stem][0]
    wav, txt = (prepared / "test-other.csv").read_text().splitlines()[0].split(",")
    assert Path(wav).is_absolute() and Path(txt).read_text() == corpus["truth"]["test-other"][Path(wav).stem][0]
    # The short training utterance is filtered, and the report says so.
    report = [json.loads(line) for line in open(prepared / "train-clean-100.report.jsonl")]
    assert [(r["id"], r.get("filtered")) for r in report] == [(SHORT, True)]
    assert "outside the training range 1-15 s" in report[0]["problem"]
    assert (prepared / "LibriSpeech" / "README.TXT").is_file()
    assert not list(prepared.glob(".extract-*"))


def test_rerun_does_no_work(prepared, corpus, server, capsys):
    manifests = sorted(prepared.glob("*.json*")) + sorted(prepared.glob("*.csv"))
    before = {p: p.stat().st_mtime_ns for p in manifests}
    requests = len(server.log)
    assert ds2(["data", "librispeech", "--root", str(prepared), "--base-url", server.url + "good/", "--checksums",
                str(corpus["checksums"]), "--formats", "jsonl,json,csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("already prepared") == 5
    assert len(server.log) == requests  # not one request
    assert {p: p.stat().st_mtime_ns for p in manifests} == before


def test_download_cut_midway_resumes(corpus, server, tmp_path, capsys):
    archive = corpus["served"] / "good" / "dev-other.tar.gz"
    size = archive.stat().st_size
    server.cut["good/dev-other.tar.gz"] = size // 3
    start, sent = len(server.log), server.sent
    results = prepare_librispeech(tmp_path, "dev-other", server.url + "good/", corpus["checksums"], jobs=1,
                                  quiet=True)
    assert server.log[start:] == [("good/dev-other.tar.gz", None), ("good/dev-other.tar.gz", f"bytes={size // 3}-")]
    assert server.sent - sent == size  # resumed, not downloaded again
    assert "resuming from byte" in capsys.readouterr().out
    assert _by_id(read_manifest(results["dev-other"].manifest)) == corpus["truth"]["dev-other"]


def test_download_keeps_the_part_file_and_resumes_on_the_next_call(corpus, server, tmp_path):
    archive = corpus["served"] / "good" / "test-clean.tar.gz"
    dest = tmp_path / "test-clean.tar.gz"
    server.cut["good/test-clean.tar.gz"] = 1000
    with pytest.raises(DownloadError, match="next run resumes"):
        download(server.url + "good/test-clean.tar.gz", dest, md5(archive), retries=0)
    assert (tmp_path / "test-clean.tar.gz.part").stat().st_size == 1000 and not dest.exists()
    download(server.url + "good/test-clean.tar.gz", dest, md5(archive), retries=0)
    assert server.log[-1] == ("good/test-clean.tar.gz", "bytes=1000-")
    assert dest.read_bytes() == archive.read_bytes()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "good/nothing.tar.gz", tmp_path / "x.tar.gz", retries=3)


def test_checksum_mismatch_stops_and_leaves_no_ready_manifest(corpus, server, tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{'0' * 32}  dev-clean.tar.gz\n")
    root = tmp_path / "root"
    assert _cli(root, server, wrong, "dev-clean") == 2
    err = capsys.readouterr().err
    assert "dev-clean.tar.gz: MD5" in err and f"does not match the expected {'0' * 32}" in err
    assert not (root / "dev-clean.jsonl").exists() and not (root / "dev-clean.prepared.json").exists()
    assert not (root / "downloads" / "dev-clean.tar.gz").exists() and not (root / "LibriSpeech").exists()

    assert _cli(root, server, corpus["checksums"], "dev-clean") == 0
    assert (root / "dev-clean.jsonl").exists()
    # A later run told to expect another checksum no longer claims the subset is ready.
    assert _cli(root, server, wrong, "dev-clean") == 2
    assert not (root / "dev-clean.jsonl").exists() and not (root / "dev-clean.prepared.json").exists()
    with pytest.raises(ChecksumError):
        download(server.url + "good/dev-clean.tar.gz", tmp_path / "x.tar.gz", "1" * 32)


def _serve_one(corpus, folder: str, subset: str, members: dict, links: dict | None = None,
               truncate: float | None = None) -> Path:
    archive = write_archive(corpus["served"] / folder / f"{subset}.tar.gz", members, links)
    if truncate:
        archive.write_bytes(archive.read_bytes()[: int(archive.stat().st_size * truncate)])
    return write_checksums(corpus["served"] / folder)  # the checksum of what is served, bad or not


def test_member_escaping_the_target_is_refused(corpus, server, tmp_path, capsys):
    members, _ = librispeech_members("dev-clean", {(84, 121123): 2})
    members["LibriSpeech/dev-clean/../../../evil.txt"] = b"owned\n"
    checksums = _serve_one(corpus, "traversal", "dev-clean", members)
    root = tmp_path / "a" / "b" / "root"
    assert _cli(root, server, checksums, "dev-clean", folder="traversal") == 2
    err = capsys.readouterr().err
    assert "member 'LibriSpeech/dev-clean/../../../evil.txt' leaves the target folder" in err and "refused" in err
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (root / "dev-clean.jsonl").exists() and not (root / "LibriSpeech" / "dev-clean").exists()
    assert not list(root.glob(".extract-*"))


def test_links_and_absolute_members_are_refused(tmp_path):
    members, _ = librispeech_members("dev-clean", {(84, 121123): 1})
    for name, links, extra in [("link", {"LibriSpeech/dev-clean/x.flac": "/etc/passwd"}, {}),
                               ("absolute", None, {"/tmp/abs.txt": b"x"})]:
        archive = write_archive(tmp_path / f"{name}.tar.gz", {**members, **extra}, links)
        with pytest.raises(ArchiveError, match="is a link|absolute path"):
            safe_extract(archive, tmp_path / name)
    assert not (tmp_path / "link" / "LibriSpeech" / "dev-clean" / "x.flac").exists()


def test_write_errors_are_not_blamed_on_the_archive(tmp_path):
    members, _ = librispeech_members("dev-clean", {(84, 121123): 1})
    archive = write_archive(tmp_path / "a.tar.gz", members)

    def full_disk(path: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        safe_extract(archive, tmp_path / "out", on_file=full_disk)


def test_no_download_uses_local_archives_and_folders(corpus, server, tmp_path, capsys):
    (tmp_path / "downloads").mkdir()
    shutil.copy(corpus["served"] / "good" / "dev-clean.tar.gz", tmp_path / "downloads")
    # A copy extracted by hand, without an archive: used as it is, and said so.
    with tarfile.open(corpus["served"] / "good" / "test-clean.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    requests = len(server.log)
    results = prepare_librispeech(tmp_path, "dev-clean,test-clean", "http://127.0.0.1:9/", corpus["checksums"],
                                  download=False, jobs=1, quiet=True)
    assert len(server.log) == requests
    assert {s: r.utterances for s, r in results.items()} == {"dev-clean": 4, "test-clean": 4}
    assert "test-clean: using " in capsys.readouterr().out
    with pytest.raises(LibriSpeechError, match="not found and downloads are off"):
        prepare_librispeech(tmp_path, "dev-other", checksums=corpus["checksums"], download=False, quiet=True)


def test_truncated_archive_is_named(corpus, server, tmp_path, capsys):
    members, _ = librispeech_members("test-clean", {(61, 70968): 6})
    checksums = _serve_one(corpus, "truncated", "test-clean", members, truncate=0.6)
    root = tmp_path / "root"
    assert _cli(root, server, checksums, "test-clean", folder="truncated") == 2
    err = capsys.readouterr().err
    assert "test-clean.tar.gz: truncated or corrupt archive" in err
    assert not (root / "test-clean.jsonl").exists() and not (root / "LibriSpeech" / "test-clean").exists()


def test_bad_utterances_are_reported_not_dropped_silently(corpus, server, tmp_path, capsys):
    members, truth = librispeech_members("dev-clean", {(84, 121123): 6}, seed=7)
    folder = "LibriSpeech/dev-clean/84/121123"
    lines = members[f"{folder}/84-121123.trans.txt"].decode().splitlines()
    lines = [ln for ln in lines if not ln.startswith("84-121123-0000")]  # audio without transcript
    lines[0] = "84-121123-0001 HELLO @ WORLD"  # unmappable character
    lines[1] = "84-121123-0002 CAFÉ AU LAIT"  # normalised to CAFE AU LAIT, kept
    members[f"{folder}/84-121123.trans.txt"] = ("\n".join(lines) + "\n").encode()
    members[f"{folder}/84-121123-0003.flac"] = members[f"{folder}/84-121123-0003.flac"][:2000]  # truncated
    del members[f"{folder}/84-121123-0004.flac"]  # transcript without audio
    checksums = _serve_one(corpus, "bad", "dev-clean", members)
    root = tmp_path / "root"
    assert _cli(root, server, checksums, "dev-clean", folder="bad") == 0
    err = capsys.readouterr().err
    report = {r["id"]: r for r in map(json.loads, open(root / "dev-clean.report.jsonl"))}
    assert report["84-121123-0000"]["problem"] == "no transcript line"
    assert "'@'" in report["84-121123-0001"]["problem"]
    assert report["84-121123-0002"]["kept"] and "CAFE AU LAIT" in report["84-121123-0002"]["problem"]
    assert "decod" in report["84-121123-0003"]["problem"]
    assert report["84-121123-0004"]["problem"] == "transcript line without audio file"
    for utt_id in ("0000", "0001", "0003", "0004"):
        assert f"84-121123-{utt_id}" in err
    assert "every one is listed in" in err
    got = _by_id(read_manifest(root / "dev-clean.jsonl"))
    assert sorted(got) == ["84-121123-0002", "84-121123-0005"]
    assert got["84-121123-0002"][0] == "CAFE AU LAIT" and got["84-121123-0005"][0] == truth["84-121123-0005"][0]


def test_wav_conversion(corpus, server, tmp_path):
    results = prepare_librispeech(tmp_path, ["test-other"], server.url + "good/", corpus["checksums"], wav=True,
                                  jobs=1, quiet=True)
    utts = read_manifest(results["test-other"].manifest)
    assert len(utts) == 4
    for u in utts:
        wav = Path(u.path)
        assert wav.suffix == ".wav" and wav.is_relative_to(tmp_path / "wav" / "test-other")
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        flac = tmp_path / "LibriSpeech" / "test-other" / wav.relative_to(tmp_path / "wav" / "test-other")
        assert np.array_equal(sf.read(str(wav), dtype="int16")[0], sf.read(str(flac.with_suffix(".flac")),
                                                                                dtype="int16")[0])
    # Changing a setting prepares the subset again (from the extracted copy, no download).
    requests = len(server.log)
    results = prepare_librispeech(tmp_path, ["test-other"], server.url + "good/", corpus["checksums"], jobs=1,
                                  quiet=True)
    assert results["test-other"].status == "prepared" and len(server.log) == requests
    assert read_manifest(results["test-other"].manifest)[0].path.endswith(".flac")


def test_recipe_end_to_end_with_a_tiny_model(prepared, corpus, server, tmp_path):
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(epochs=2, batch_size=4), config)
    run = tmp_path / "run"
    assert ds2(["run", "librispeech", "--out", str(run), "--root", str(prepared), "--base-url", server.url + "good/",
                "--checksums", str(corpus["checksums"]), "--config", str(config), "--jobs", "1", "--no-lm"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["results"]) == {"dev-clean", "dev-other", "test-clean", "test-other"}
    assert all(r["num_utterances"] == 4 for r in summary["results"].values())
    assert (run / "model.onnx").is_file() and (run / "train" / "best.pt").is_file()
    trained = json.loads((run / "train" / "done.json").read_text())
    assert trained["epoch"] == 2


def test_subset_names_mirrors_and_published_counts(capsys):
    assert parse_subsets("train-960,dev-clean") == ["train-clean-100", "train-clean-360", "train-other-500",
                                                   "dev-clean"]
    with pytest.raises(ValueError, match="unknown LibriSpeech subset 'dev-cleen'"):
        parse_subsets("dev-cleen")
    assert resolve_base_url("elda") == "https://openslr.elda.org/resources/12/"
    assert resolve_base_url(None) == "https://www.openslr.org/resources/12/"
    assert resolve_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/"
    assert len(SUBSETS) == 7 and SUBSETS["train-clean-100"].utterances == 28539
    assert SUBSETS["dev-clean"].md5 == "42e2234ba48799c1f50f24a7926300a1"
    results = {"dev-clean": SubsetResult("dev-clean", "prepared", {"jsonl": Path("d.jsonl")}, 2700, 2700,
                                         official=2703),
               "test-clean": SubsetResult("test-clean", "prepared", {"jsonl": Path("t.jsonl")}, 2620, 2620,
                                          official=2620)}
    _print_summary(results, ["dev-clean", "test-clean"])
    captured = capsys.readouterr()
    assert "WARNING: dev-clean: 2,700 utterances in the archive, but OpenSLR publishes 2,703" in captured.err
    assert "test-clean: 2,620 utterances in the archive, as OpenSLR publishes" in captured.out


def test_a_failed_subset_does_not_stop_the_others(corpus, server, tmp_path):
    checksums = tmp_path / "partial.txt"
    checksums.write_text(corpus["checksums"].read_text().replace(md5(corpus["served"] / "good" / "dev-clean.tar.gz"),
                                                                 "f" * 32))
    with pytest.raises(LibriSpeechError, match=r"dev-clean: .*MD5.*\(prepared: test-clean\)"):
        prepare_librispeech(tmp_path, "dev-clean,test-clean", server.url + "good/", checksums, jobs=1, quiet=True)
    assert (tmp_path / "test-clean.jsonl").exists() and not (tmp_path / "dev-clean.jsonl").exists()
