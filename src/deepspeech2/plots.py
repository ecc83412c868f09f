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
