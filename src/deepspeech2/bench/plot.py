"""bench.png: bar charts of training throughput and inference speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from .harness import RowResult


def plot_report(report: dict, path: Path) -> None:
    """Bar charts: training throughput (epoch hours on the bars) and inference × real time."""
    from ..plots import _pyplot

    plt = _pyplot()
    train = [RowResult(**r) for r in report["training"]]
    infer = [RowResult(**r) for r in report["inference"]]
    panels = [(rows, title) for rows, title in ((train, "training: audio s / wall s (one epoch of train-clean-100)"),
                                                 (infer, "inference: × real time (batch 1, 1 thread)")) if rows]
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(10, 1.2 + 0.45 * sum(len(p[0]) for p in panels) + 1),
                             squeeze=False, gridspec_kw={"height_ratios": [max(1, len(p[0])) for p in panels] or [1]})
    for ax, (rows, title) in zip(axes[:, 0], panels, strict=False):
        values = [(r.audio_per_s if r.kind == "train" else (1 / r.rtf if r.rtf else None)) for r in rows]
        y = np.arange(len(rows))[::-1]
        shown = [v or 0.0 for v in values]
        colors = ["tab:orange" if r.name.startswith("mindspore") else "tab:blue" for r in rows]
        ax.barh(y, shown, color=colors)
        ax.set_yticks(y, [r.name for r in rows])
        positive = [v for v in values if v]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
        for yi, r, v in zip(y, rows, values, strict=True):
            if not v:
                x = min(positive) if positive and ax.get_xscale() == "log" else 0
                ax.text(x, yi, f" {r.status if r.status != 'ok' else '—'}", va="center", color="gray", fontsize=8)
            elif r.kind == "train":
                ax.text(v, yi, f" {v:.2f} ({r.epoch_hours:.1f} h/epoch)", va="center", fontsize=8)
            else:
                ax.text(v, yi, f" {v:.1f}× (RTF {r.rtf:.3f})", va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.25)
    fig.tight_layout()
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
