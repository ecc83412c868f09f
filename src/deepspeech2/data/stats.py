"""Manifest statistics, and the audio check every importer shares.

``probe_audio`` decodes a whole file (a header can be fine while the data is not),
optionally writing it as 16 kHz 16-bit WAV; ``parallel_map`` runs it over all cores.
``manifest_stats`` reports utterances, hours, speakers, a duration histogram (PNG),
characters outside the alphabet and files that fail to decode.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf

from ..atomic import atomic_output, atomic_write_text
from ..progress import bar as progress_bar
from ..text import CHARACTERS, normalize_text
from .formats import read_any_manifest

T = TypeVar("T")
R = TypeVar("R")


def _mp_context():
    # fork is fastest, but forking while another thread runs (a download in the background)
    # can deadlock the child; forkserver starts workers from a clean process instead.
    # (tqdm's monitor is a daemon thread that only sleeps, so daemon threads do not count.)
    methods = multiprocessing.get_all_start_methods()
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if not others and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def default_jobs(jobs: int | None = None) -> int:
    """``jobs`` or the cores this process may use."""
    if jobs:
        return max(1, jobs)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_map(fn: Callable[[T], R], items: Sequence[T], jobs: int | None = None, desc: str | None = None,
                 unit: str = "utt") -> list[R]:
    """``[fn(x) for x in items]`` over ``jobs`` processes (default: all cores), in order,
    with a progress bar. ``fn`` must be a module-level function."""
    jobs = default_jobs(jobs)
    results: list[R] = []
    bar = progress_bar(total=len(items), desc=desc, unit=unit, disable=desc is None or not items)
    try:
        if jobs == 1 or len(items) < 8:
            for item in items:
                results.append(fn(item))
                bar.update()
        else:
            chunk = max(1, min(32, len(items) // (jobs * 8)))
            with ProcessPoolExecutor(jobs, mp_context=_mp_context()) as pool:
                for result in pool.map(fn, items, chunksize=chunk):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


class StreamingMap:
    """``fn`` over items that become available one by one (files coming out of an
    archive), on ``jobs`` processes while the caller goes on; ``results()`` waits for all.
    With one job the items are processed at once, in this process."""

    def __init__(self, fn: Callable[[T], R], jobs: int | None = None):
        self.fn = fn
        self.jobs = default_jobs(jobs)
        self.pool = ProcessPoolExecutor(self.jobs, mp_context=_mp_context()) if self.jobs > 1 else None
        self.futures: dict[Any, Future] = {}
        self.done: dict[Any, R] = {}

    def submit(self, key: Any, item: T) -> None:
        if self.pool is None:
            self.done[key] = self.fn(item)
        else:
            self.futures[key] = self.pool.submit(self.fn, item)

    def results(self, desc: str | None = None, unit: str = "utt") -> dict[Any, R]:
        """{key: result} for everything submitted; shuts the processes down."""
        if self.pool is not None:
            pending = [f for f in self.futures.values() if not f.done()]
            bar = progress_bar(total=len(self.futures), initial=len(self.futures) - len(pending), desc=desc,
                               unit=unit, disable=desc is None)
            for _ in as_completed(pending):
                bar.update()
            bar.close()
            self.done.update({key: future.result() for key, future in self.futures.items()})
            self.close()
        return self.done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def probe_audio(job: tuple[str, str | None, int]) -> tuple[float, int, str | None]:
    """Decode ``path`` completely: (duration s, sample rate, error or None).

    With ``wav_out`` the audio is also written there as mono 16-bit PCM WAV at
    ``sample_rate`` (via a temporary name, so a killed run leaves no half file).
    """
    path, wav_out, sample_rate = job
    try:
        with sf.SoundFile(path) as f:  # one open for header and samples
            frames, rate = f.frames, f.samplerate
            if frames == 0:
                return 0.0, rate, "audio file is empty"
            resample = wav_out is not None and rate != sample_rate
            samples = f.read(dtype="float32" if resample else "int16", always_2d=True)
    except Exception as e:  # soundfile raises several types for missing or corrupt input
        message = str(e).replace(f"{path}: ", "").strip() or type(e).__name__
        return 0.0, 0, f"cannot decode audio ({message})"
    if len(samples) < frames:
        # libsndfile stops quietly at a corrupt block; fewer frames than the header says
        # means the rest of the file is lost.
        return len(samples) / rate, rate, f"decoded {len(samples)} of {frames} frames (corrupt or truncated)"
    duration = len(samples) / rate
    if wav_out is not None:
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        if resample:
            import soxr

            mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
        elif samples.shape[1] > 1:
            mono = mono.astype(np.int16)
        with atomic_output(wav_out) as tmp:
            sf.write(str(tmp), mono, sample_rate, subtype="PCM_16", format="WAV")
    return duration, rate, None


def _probe_path(path: str) -> tuple[float, int, str | None]:
    return probe_audio((path, None, 16000))


def text_problems(texts: Iterable[str]) -> tuple[Counter, list[tuple[int, str]]]:
    """(characters outside the alphabet after upper-casing -> count, [(index, reason)]
    for transcripts that normalisation cannot map to the alphabet)."""
    outside: Counter = Counter()
    unmappable = []
    for i, text in enumerate(texts):
        outside.update(c for c in text.upper() if c not in CHARACTERS)
        try:
            if not normalize_text(text):
                unmappable.append((i, "empty transcript"))
        except ValueError as e:
            unmappable.append((i, str(e)))
    return outside, unmappable


def plot_durations(durations: Sequence[float], path: str | os.PathLike, title: str = "",
                   bins: int = 40) -> Path:
    """A histogram PNG of utterance durations (seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(durations, bins=bins, color="tab:blue", edgecolor="white")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("utterances")
    hours = sum(durations) / 3600
    ax.set_title(f"{title}: {len(durations):,} utterances, {hours:.2f} h" if title else f"{hours:.2f} h")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def manifest_stats(manifest: str | os.PathLike, png: str | os.PathLike | None = None, decode: bool = True,
                   jobs: int | None = None, bins: int = 40) -> dict[str, Any]:
    """Statistics of a manifest in any format; with ``decode`` every file is decoded
    (durations then come from the audio, and failures are listed)."""
    from .formats import detect_format

    manifest = Path(manifest)
    utterances = read_any_manifest(manifest)
    durations = [u.duration for u in utterances]
    undecodable = []
    if decode and utterances:
        probes = parallel_map(_probe_path, [u.path for u in utterances], jobs, desc=f"decode {manifest.name}")
        for i, (utt, (seconds, _, error)) in enumerate(zip(utterances, probes, strict=True)):
            if error:
                undecodable.append({"line": i + 1, "path": utt.path, "error": error})
            else:
                durations[i] = seconds
    failed = {x["line"] - 1 for x in undecodable}
    good = [d for i, d in enumerate(durations) if d > 0 and i not in failed]
    outside, unmappable = text_problems(u.text for u in utterances)
    png = Path(png) if png else manifest.with_name(f"{manifest.stem}.durations.png")
    if good:
        plot_durations(good, png, manifest.name, bins)
    counts, edges = np.histogram(good, bins=bins) if good else (np.zeros(0), np.zeros(0))
    return {
        "manifest": str(manifest), "format": detect_format(manifest),
        "utterances": len(utterances), "hours": sum(good) / 3600,
        "speakers": len({u.speaker for u in utterances if u.speaker}),
        "duration": ({"min": min(good), "max": max(good), "mean": float(np.mean(good)),
                      "median": float(np.median(good))} if good else None),
        "histogram": {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]},
        "png": str(png) if good else None,
        "outside_alphabet": dict(outside.most_common()),
        "unmappable": [{"line": i + 1, "path": utterances[i].path, "reason": reason} for i, reason in unmappable],
        "undecodable": undecodable,
        "decoded": decode,
    }


def format_stats(stats: dict[str, Any], limit: int = 10) -> str:
    """The report ``ds2 data stats`` prints."""
    lines = [f"{stats['manifest']} ({stats['format']})",
             f"  utterances: {stats['utterances']:,}",
             f"  hours:      {stats['hours']:.3f}",
             f"  speakers:   {stats['speakers']:,}"]
    d = stats["duration"]
    if d:
        lines.append(f"  duration:   {d['min']:.2f} to {d['max']:.2f} s, mean {d['mean']:.2f} s, "
                     f"median {d['median']:.2f} s")
        counts, edges = stats["histogram"]["counts"], stats["histogram"]["edges"]
        # A coarse text histogram (8 groups of bins) next to the PNG.
        group = max(1, len(counts) // 8)
        top = max(sum(counts[i:i + group]) for i in range(0, len(counts), group)) or 1
        for i in range(0, len(counts), group):
            n = sum(counts[i:i + group])
            hi = edges[min(i + group, len(edges) - 1)]
            lines.append(f"    {edges[i]:6.2f}-{hi:6.2f} s {n:8,} {'#' * round(40 * n / top)}")
        lines.append(f"  histogram:  {stats['png']}")
    outside = stats["outside_alphabet"]
    if outside:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(outside.items())[:limit])
        lines.append(f"  characters outside the alphabet: {shown}"
                     f"{' …' if len(outside) > limit else ''} (normalisation removes punctuation and accents; "
                     "what it cannot map is listed below)")
    else:
        lines.append("  characters outside the alphabet: none")
    if stats["unmappable"]:
        lines.append(f"  transcripts that cannot be used ({len(stats['unmappable'])}):")
        lines += [f"    line {x['line']}: {x['path']}: {x['reason']}" for x in stats["unmappable"][:limit]]
    if stats["decoded"]:
        lines.append(f"  files that fail to decode: {len(stats['undecodable']) or 'none'}")
        lines += [f"    line {x['line']}: {x['path']}: {x['error']}" for x in stats["undecodable"][:limit]]
    else:
        lines.append("  files that fail to decode: not checked (--no-decode)")
    return "\n".join(lines)


def write_stats_json(stats: dict[str, Any], path: str | os.PathLike) -> None:
    atomic_write_text(path, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
