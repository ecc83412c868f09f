"""How fast ``ds2 data librispeech`` prepares a subset: a synthetic 2,000-utterance
archive in the exact LibriSpeech layout, served over HTTP on 127.0.0.1, prepared from
scratch, timed per stage and compared with how fast this machine decodes the same FLAC
files, which is the bound the preparation should reach.

    .venv/bin/python benchmarks/prepare_librispeech.py [--utterances 2000] [--jobs N]

The archive is kept in --workdir (default /tmp/ds2-bench-librispeech) and reused.
Durations are uniform in 2-12 s (mean 7 s, like dev-clean's 7.2 s); the audio is tones
with noise, about 20 kB of FLAC per second as real LibriSpeech.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import resource
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from deepspeech2.data.librispeech import prepare_librispeech  # noqa: E402
from deepspeech2.data.stats import default_jobs, parallel_map  # noqa: E402
from test_librispeech import WORDS, RangeServer  # noqa: E402 - the tests' loopback server

SUBSET = "dev-clean"


def build_archive(path: Path, utterances: int, seed: int = 0) -> float:
    """Write the archive (20 utterances per chapter, 4 chapters per speaker); returns hours."""
    rng = np.random.default_rng(seed)
    total = 0.0
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:  # FLAC does not compress further
        chapters: dict[tuple[int, int], list[str]] = {}
        for i in range(utterances):
            speaker, chapter, utt = 1000 + i // 80, 10000 + i // 20, i % 20
            seconds = float(rng.uniform(2, 12))
            t = np.arange(int(seconds * 16000)) / 16000
            f0 = rng.uniform(100, 300)
            # A pitch-modulated tone with noise: FLAC compresses it about as much as speech.
            x = 0.3 * np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 0.5 * t)) + 0.02 * rng.standard_normal(len(t))
            buf = io.BytesIO()
            sf.write(buf, x, 16000, format="FLAC", subtype="PCM_16")
            name = f"{speaker}-{chapter}-{utt:04d}"
            info = tarfile.TarInfo(f"LibriSpeech/{SUBSET}/{speaker}/{chapter}/{name}.flac")
            data = buf.getvalue()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            chapters.setdefault((speaker, chapter), []).append(f"{name} {' '.join(rng.choice(WORDS, 8))}")
            total += seconds
            if len(chapters[(speaker, chapter)]) == 20 or i == utterances - 1:
                text = ("\n".join(chapters[(speaker, chapter)]) + "\n").encode()
                info = tarfile.TarInfo(f"LibriSpeech/{SUBSET}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt")
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text))
    tmp.replace(path)
    return total / 3600


def _decode(path: str) -> int:
    return len(sf.read(path, dtype="int16")[0])


def _serve(folder: Path, urls) -> None:
    server = RangeServer(folder)
    urls.put(server.url)
    server.thread.join()


def _cpu() -> float:
    """CPU seconds of this process (all threads) and its finished children: a measure that
    holds when other work shares the machine, unlike wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--jobs", type=int, help="decoding processes (default: all cores)")
    parser.add_argument("--workdir", default="/tmp/ds2-bench-librispeech")
    parser.add_argument("--wav", action="store_true", help="also convert to WAV")
    args = parser.parse_args()
    jobs = default_jobs(args.jobs)

    work = Path(args.workdir)
    served = work / "served"
    served.mkdir(parents=True, exist_ok=True)
    archive = served / f"{SUBSET}.tar.gz"
    meta = served / "meta.json"
    if not (meta.exists() and json.loads(meta.read_text())["utterances"] == args.utterances and archive.exists()):
        print(f"building a {args.utterances}-utterance archive in {archive} ...", flush=True)
        started = time.time()
        hours = build_archive(archive, args.utterances)
        meta.write_text(json.dumps({"utterances": args.utterances, "hours": hours}))
        print(f"  {hours:.2f} h of audio, {archive.stat().st_size / 1e6:.0f} MB, "
              f"built in {time.time() - started:.0f} s")
    hours = json.loads(meta.read_text())["hours"]
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    (served / "md5sum.txt").write_text(f"{digest}  {archive.name}\n")

    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    # The server runs in its own process, as a remote one would: its work is not timed.
    urls: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(served, urls), daemon=True)
    server.start()
    try:
        url = urls.get(timeout=30)
        started, cpu = time.time(), _cpu()
        result = prepare_librispeech(root, [SUBSET], url, served / "md5sum.txt", wav=args.wav, jobs=jobs,
                                     quiet=True)[SUBSET]
        total, prepare_cpu = time.time() - started, _cpu() - cpu
    finally:
        server.terminate()
        server.join()
    assert result.utterances == args.utterances, result

    # The bound: decoding the same files in as many processes, and on one.
    files = [str(p) for p in sorted((root / "LibriSpeech" / SUBSET).rglob("*.flac"))]
    started = time.time()
    parallel_map(_decode, files, jobs)
    decode_all = time.time() - started
    started, cpu = time.time(), _cpu()
    for f in files:
        _decode(f)
    decode_one, decode_cpu = (time.time() - started) / len(files), _cpu() - cpu

    n = args.utterances
    s = result.seconds
    report = {
        "utterances": n, "audio_hours": round(hours, 2), "archive_mb": round(archive.stat().st_size / 1e6, 1),
        "jobs": jobs, "wav": args.wav,
        "prepare_seconds": round(total, 2), "prepare_utt_per_s": round(n / total, 1),
        "stage_seconds": {k: round(v, 2) for k, v in s.items()},
        "decode_stage_utt_per_s": round(n / s["decode"], 1),
        "bound_decode_only_utt_per_s": round(n / decode_all, 1),
        "one_core_decode_utt_per_s": round(1 / decode_one, 1),
        "prepare_x_realtime": round(hours * 3600 / total, 1),
        "prepare_cpu_seconds": round(prepare_cpu, 2), "decode_only_cpu_seconds": round(decode_cpu, 2),
        "prepare_utt_per_cpu_second": round(n / prepare_cpu, 1), "decode_utt_per_cpu_second": round(n / decode_cpu, 1),
    }
    print(json.dumps(report, indent=2))
    print(f"\nprepared {n} utterances ({hours:.2f} h) in {total:.1f} s: {n / total:.0f} utterances/s "
          f"({hours * 3600 / total:.0f}x real time) on {jobs} processes; decoding alone: "
          f"{n / decode_all:.0f} utterances/s ({1 / decode_one:.0f}/s on one core)\n"
          f"CPU time: prepare {prepare_cpu:.1f} s ({n / prepare_cpu:.0f} utterances per CPU second), of which "
          f"decoding alone is {decode_cpu:.1f} s ({100 * decode_cpu / prepare_cpu:.0f} %)")


if __name__ == "__main__":
    main()
