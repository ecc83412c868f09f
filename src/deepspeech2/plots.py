"""PNG plots of training curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(steps: list[tuple[int, float]], epochs: list[dict], path: str | Path) -> None:
    """Training loss per step (with a moving average) and dev WER/CER per epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        x = np.array([s for s, _ in steps])
        y = np.array([v for _, v in steps])
        ax_loss.plot(x, y, alpha=0.3, color="tab:blue", label="loss")
        window = max(1, len(y) // 50)
        if window > 1:
            smooth = np.convolve(y, np.ones(window) / window, mode="valid")
            ax_loss.plot(x[window - 1:], smooth, color="tab:blue", label=f"mean of {window}")
        ax_loss.set_yscale("log")
        ax_loss.legend()
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("CTC loss")
    ax_loss.set_title("training loss")
    rows = [e for e in epochs if e.get("dev_wer") is not None]
    if rows:
        ax_wer.plot([e["epoch"] for e in rows], [100 * e["dev_wer"] for e in rows], "o-", label="WER")
        ax_wer.plot([e["epoch"] for e in rows], [100 * e["dev_cer"] for e in rows], "s--", label="CER")
        ax_wer.legend()
    ax_wer.set_xlabel("epoch")
    ax_wer.set_ylabel("%")
    ax_wer.set_title("dev error rates")
    ax_wer.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_grouped_bars(groups: list[str], series: dict[str, list[float]], ylabel: str, title: str,
                      path: str | Path) -> None:
    """One bar per series in each group (e.g. a training variant's CER on each test set)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        ax.bar([j + i * width for j in range(len(groups))], values, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
