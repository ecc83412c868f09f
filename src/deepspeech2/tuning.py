"""``ds2 lm tune``: search the LM weight (alpha) and word bonus (beta) on a dev set.

The acoustic model runs once: its log-probabilities are cached (``logprobs.npz``, keyed
by the model file and the manifest), then every (alpha, beta) point is only a beam
search, spread over the cores. The result is a WER table (CSV, JSON, printed), the best
settings as ``decoder.yaml`` and the WER surface as a PNG.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from .atomic import atomic_output, atomic_write_text
from .decoding import Decoder, DecoderConfig, save_decoder_config
from .metrics import ErrorRates
from .progress import bar as progress_bar
from .text import Alphabet

# Default grid. alpha weighs log10 LM probabilities against natural-log acoustic ones; with the mini
# corpus's character 6-gram the best dev point was alpha 3 with beta -1 on a 0.5-3 x -3..1 grid.
DEFAULT_ALPHAS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
DEFAULT_BETAS = (-2.0, -1.0, 0.0, 1.0)


# --------------------------------------------------------------------------- log-prob cache

def dataset_log_probs(model, dataset, batch_size: int = 32, progress: bool = True) -> list[np.ndarray]:
    """(T, C) log-probabilities of every utterance, in dataset order; ``model``: anything
    with ``log_probs(batch)`` (a backend, or a Transcriber on an ONNX model)."""
    order = np.argsort(np.asarray(dataset.frames), kind="stable").tolist()
    out: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(dataset)
    bar = progress_bar(total=len(order), desc="acoustic model", unit="utt", disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        indices = order[start: start + batch_size]
        log_probs, lengths = model.log_probs(dataset.batch(indices))
        for i, lp, n in zip(indices, log_probs, lengths, strict=True):
            out[i] = np.ascontiguousarray(lp[: int(n)], dtype=np.float32)
        bar.update(len(indices))
    bar.close()
    return out


def cache_key(model_path: str | os.PathLike, manifest: str | os.PathLike) -> str:
    """Changes when the model file or the manifest changes."""
    parts = []
    for path in (Path(model_path), Path(manifest)):
        stat = path.stat()
        parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def save_log_probs(path: str | os.PathLike, key: str, log_probs: Sequence[np.ndarray],
                   references: Sequence[str]) -> None:
    lengths = np.array([len(lp) for lp in log_probs], dtype=np.int64)
    stacked = np.concatenate(log_probs) if log_probs else np.zeros((0, 0), np.float32)
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, key=np.array(key), lengths=lengths, log_probs=stacked,
                 references=np.array(json.dumps(list(references))))


def load_log_probs(path: str | os.PathLike, key: str) -> tuple[list[np.ndarray], list[str]] | None:
    """The cached log-probabilities when the file exists and was made for ``key``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            lengths = data["lengths"]
            stacked = data["log_probs"]
            references = json.loads(str(data["references"]))
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is recomputed
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [stacked[bounds[i]: bounds[i + 1]] for i in range(len(lengths))], references


# --------------------------------------------------------------------------- search

def grid_points(alphas: Sequence[float], betas: Sequence[float]) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a in alphas for b in betas]


def random_points(trials: int, alpha_range: tuple[float, float], beta_range: tuple[float, float],
                  seed: int = 0) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(round(rng.uniform(*alpha_range), 3), round(rng.uniform(*beta_range), 3)) for _ in range(trials)]


_WORKER: dict = {}


def _init_worker(log_probs, references, alphabet_blank, base: DecoderConfig) -> None:
    _WORKER.update(log_probs=log_probs, references=references, alphabet=Alphabet(alphabet_blank), base=base)


def _score_point(point: tuple[float, float]) -> dict:
    alpha, beta = point
    cfg = replace(_WORKER["base"], type="beam", alpha=alpha, beta=beta)
    decoder = Decoder(cfg, _WORKER["alphabet"])
    rates = ErrorRates()
    for lp, ref in zip(_WORKER["log_probs"], _WORKER["references"], strict=True):
        rates.add(ref, decoder.decode(lp[None], np.array([len(lp)]))[0])
    return {"alpha": alpha, "beta": beta, "wer": rates.wer, "cer": rates.cer}


def search(score: Callable[[tuple[float, float]], dict], points: Sequence[tuple[float, float]], jobs: int = 1,
           initializer: Callable | None = None, initargs: tuple = (), progress: bool = True) -> list[dict]:
    """``score`` every point (in ``jobs`` processes); rows sorted best first (lowest WER,
    then CER, then the smaller alpha: the LM trusted no more than it needs to be)."""
    bar = progress_bar(total=len(points), desc="tune", unit="point", disable=not progress, leave=False)
    rows = []
    if jobs > 1 and len(points) > 1:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                 initializer=initializer, initargs=initargs) as pool:
            for row in pool.map(score, points):
                rows.append(row)
                bar.update(1)
    else:
        if initializer is not None:
            initializer(*initargs)
        for point in points:
            rows.append(score(point))
            bar.update(1)
    bar.close()
    return sorted(rows, key=lambda r: (round(r["wer"], 9), round(r["cer"], 9), r["alpha"], abs(r["beta"])))


def tune(log_probs: Sequence[np.ndarray], references: Sequence[str], alphabet: Alphabet, base: DecoderConfig,
         points: Sequence[tuple[float, float]], jobs: int | None = None, progress: bool = True) -> list[dict]:
    """WER and CER of beam search with ``base``'s LM and beam at every (alpha, beta)."""
    jobs = jobs or os.cpu_count() or 1
    return search(_score_point, points, jobs, _init_worker, (list(log_probs), list(references), alphabet.blank,
                                                             base), progress)


# --------------------------------------------------------------------------- report

def format_table(rows: Sequence[dict], greedy: dict | None = None, limit: int = 15) -> str:
    lines = [f"{'alpha':>7} {'beta':>7} {'WER %':>8} {'CER %':>8}"]
    for row in rows[:limit]:
        lines.append(f"{row['alpha']:7.3g} {row['beta']:7.3g} {100 * row['wer']:8.2f} {100 * row['cer']:8.2f}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more in tune.csv")
    if greedy:
        lines.append(f"{'greedy':>15} {100 * greedy['wer']:8.2f} {100 * greedy['cer']:8.2f}")
    return "\n".join(lines)


def plot_surface(rows: Sequence[dict], path: str | os.PathLike, title: str = "") -> None:
    """WER over (alpha, beta): a heat map for a grid, a scatter for random points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = sorted({r["alpha"] for r in rows})
    betas = sorted({r["beta"] for r in rows})
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    if len(alphas) * len(betas) == len(rows):
        grid = np.full((len(betas), len(alphas)), np.nan)
        for r in rows:
            grid[betas.index(r["beta"]), alphas.index(r["alpha"])] = 100 * r["wer"]
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis_r")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        middle = np.nanmin(grid) + 0.5 * (np.nanmax(grid) - np.nanmin(grid))
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if value < middle else "white")  # the low (yellow) end needs dark text
        best = rows[0]
        ax.plot(alphas.index(best["alpha"]), betas.index(best["beta"]), "r*", markersize=14)
    else:
        image = ax.scatter([r["alpha"] for r in rows], [r["beta"] for r in rows],
                           c=[100 * r["wer"] for r in rows], cmap="viridis_r", s=60)
        ax.plot(rows[0]["alpha"], rows[0]["beta"], "r*", markersize=14)
    fig.colorbar(image, ax=ax, label="WER %")
    ax.set_xlabel("alpha (LM weight)")
    ax.set_ylabel("beta (word bonus)")
    ax.set_title(title or "dev WER by LM weight and word bonus (best: *)")
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_tuning(rows: Sequence[dict], base: DecoderConfig, out_dir: str | os.PathLike,
                 greedy: dict | None = None, decoder_path: str | os.PathLike | None = None) -> Path:
    """tune.csv, tune.json, tune.png and the best settings as decoder.yaml; returns its path."""
    out = Path(out_dir)
    best = rows[0]
    cfg = replace(base, type="beam", alpha=best["alpha"], beta=best["beta"])
    decoder_path = Path(decoder_path) if decoder_path else out / "decoder.yaml"
    save_decoder_config(cfg, decoder_path)
    csv = ["alpha,beta,wer,cer"] + [f"{r['alpha']},{r['beta']},{r['wer']:.6f},{r['cer']:.6f}" for r in rows]
    atomic_write_text(out / "tune.csv", "\n".join(csv) + "\n")
    atomic_write_text(out / "tune.json", json.dumps({"best": best, "greedy": greedy, "decoder": str(decoder_path),
                                                     "beam_width": base.beam_width, "lm": base.lm,
                                                     "points": list(rows)}, indent=2) + "\n")
    plot_surface(rows, out / "tune.png")
    return decoder_path


# --------------------------------------------------------------------------- ds2 lm tune

def model_log_probs(manifest: str | os.PathLike, out_dir: str | os.PathLike, checkpoint: str | None = None,
                    onnx: str | None = None, cache_dir: str | None = None,
                    batch_size: int = 32) -> tuple[list[np.ndarray], list[str], Alphabet]:
    """Log-probabilities of every utterance of ``manifest`` under a checkpoint or an ONNX
    model, computed once and cached in ``out_dir/logprobs-<manifest>.npz``."""
    from .data.dataset import SkipReport, load_dataset
    from .data.features import FeatureCache, default_cache_dir

    if bool(checkpoint) == bool(onnx):
        raise ValueError("give exactly one of a checkpoint or an ONNX model")
    model_path = Path(checkpoint or onnx)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: model not found")
    if not Path(manifest).is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    cache = Path(out_dir) / f"logprobs-{Path(manifest).stem}.npz"
    key = cache_key(model_path, manifest)
    if onnx:
        from .transcribe import Transcriber

        model = Transcriber.from_onnx(onnx)
        cfg = model.cfg
    else:
        from .checkpoints import read_config

        cfg, model = read_config(checkpoint), None
    alphabet = Alphabet(cfg.text.blank)
    cached = load_log_probs(cache, key)
    if cached is not None:
        print(f"log-probabilities: {cache} (cached)")
        return cached[0], cached[1], alphabet
    if model is None:
        from .checkpoints import load_backend

        cfg, model = load_backend(checkpoint, cache_dir)
    elif cache_dir:
        cfg.data.cache_dir = str(cache_dir)
    dataset = load_dataset(manifest, cfg, FeatureCache(default_cache_dir(cfg), cfg.audio.feature_spec()),
                           SkipReport())
    log_probs = dataset_log_probs(model, dataset, batch_size)
    references = [u.text for u in dataset.utterances]
    save_log_probs(cache, key, log_probs, references)
    return log_probs, references, alphabet


def greedy_rates(log_probs: Sequence[np.ndarray], references: Sequence[str], alphabet: Alphabet) -> dict:
    from .decoding import greedy_decode

    rates = ErrorRates()
    for lp, ref in zip(log_probs, references, strict=True):
        rates.add(ref, greedy_decode(lp[None], np.array([len(lp)]), alphabet)[0])
    return {"wer": rates.wer, "cer": rates.cer}


def tune_model(manifest: str | os.PathLike, lm: str | os.PathLike, out_dir: str | os.PathLike,
               checkpoint: str | None = None, onnx: str | None = None, alphas: Sequence[float] = DEFAULT_ALPHAS,
               betas: Sequence[float] = DEFAULT_BETAS, trials: int = 0, beam_width: int = 64,
               base: DecoderConfig | None = None, jobs: int | None = None, cache_dir: str | None = None,
               decoder_path: str | os.PathLike | None = None, seed: int = 0,
               widths: Sequence[int] = ()) -> dict:
    """``ds2 lm tune``: grid (or ``trials`` random points in the grid's ranges) search of
    alpha and beta on ``manifest``; writes decoder.yaml, tune.csv/json/png under ``out_dir``.
    ``widths``: then try these beam widths at the best (alpha, beta) and keep the smallest
    within 0.1 WER points of the best one (the decoding cost grows with the width)."""
    out = Path(out_dir)
    base = replace(base or DecoderConfig(), type="beam", lm=str(Path(lm).resolve()), beam_width=beam_width)
    log_probs, references, alphabet = model_log_probs(manifest, out, checkpoint, onnx, cache_dir)
    Decoder(base, alphabet)  # a bad LM fails here, once, with its file name
    points = (random_points(trials, (min(alphas), max(alphas)), (min(betas), max(betas)), seed) if trials
              else grid_points(alphas, betas))
    greedy = greedy_rates(log_probs, references, alphabet)
    rows = tune(log_probs, references, alphabet, base, points, jobs)
    best = rows[0]
    by_width = []
    if widths:
        point = [(best["alpha"], best["beta"])]
        for width in sorted(set(widths)):
            row = tune(log_probs, references, alphabet, replace(base, beam_width=width), point, 1, False)[0]
            by_width.append({**row, "beam_width": width})
        lowest = min(r["wer"] for r in by_width + [best])
        base = replace(base, beam_width=min(r["beam_width"] for r in by_width if r["wer"] <= lowest + 1e-3))
    path = write_tuning(rows, base, out, greedy, decoder_path)
    print(format_table(rows, greedy))
    for r in by_width:
        print(f"beam width {r['beam_width']:>4}: dev WER {100 * r['wer']:.2f} %")
    print(f"best: alpha {best['alpha']:g}, beta {best['beta']:g}, beam width {base.beam_width}: dev WER "
          f"{100 * best['wer']:.2f} % (greedy {100 * greedy['wer']:.2f} %) -> {path}; surface: {out / 'tune.png'}")
    if by_width:
        info = json.loads((out / "tune.json").read_text())
        atomic_write_text(out / "tune.json", json.dumps({**info, "widths": by_width}, indent=2) + "\n")
    return {"best": best, "greedy": greedy, "decoder": str(path), "points": len(rows), "beam_width": base.beam_width,
            "widths": by_width}
