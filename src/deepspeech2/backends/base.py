"""What a backend provides: the network, the train step, the checkpoint format, export.

Everything else (data, batching, the training loop, decoding, metrics) is shared, so
a backend is one class with the methods below; ``create_backend`` picks it by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import Config
from ..data.dataset import Batch
from .common import CheckpointMismatch, check_parameter_shapes  # noqa: F401  (importers' old home)


class Backend(Protocol):
    name: str
    checkpoint_suffix: str
    cfg: Config

    def num_parameters(self) -> int: ...

    def set_lr(self, lr: float) -> None: ...

    def train_step(self, batch: Batch) -> float | None:
        """One optimizer step; returns the loss, or None when it was not finite (skipped)."""

    def log_probs(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode log-probabilities (B, T, C) and output lengths (B,)."""

    def save(self, path: Path, progress: dict) -> None:
        """Write model, optimizer, RNG, config and ``progress`` atomically."""

    def load(self, path: Path, training_state: bool = True) -> dict:
        """Restore a checkpoint of this backend; returns its ``progress``."""

    def load_pretrained(self, path: Path) -> None:
        """Initialise the weights from a checkpoint; shapes must match."""

    def export(self, path: Path, fmt: str, example: Batch, int8: bool = False) -> dict:
        """Export for inference; returns a report (e.g. max abs difference). ``int8``: ONNX with
        int8 dynamic quantization."""

    # Optional, for data-parallel backends: ``rank`` and ``world_size`` attributes and
    # ``barrier()`` / ``broadcast(value)``; the training loop treats a backend without
    # them as a single process.


def quantize_int8(backend: Backend) -> None:
    """Switch ``backend`` to int8 dynamic quantization for inference; ValueError where it has none."""
    if not hasattr(backend, "quantize_int8"):
        raise ValueError(f"int8 inference needs the torch backend, not {backend.name!r}")
    backend.quantize_int8()


def create_backend(cfg: Config, device: str | None = None) -> Backend:
    if cfg.backend == "torch":
        from .torch.engine import TorchBackend

        return TorchBackend(cfg, device)
    if cfg.backend == "mindspore":
        try:
            import mindspore  # noqa: F401
        except ImportError:
            raise SystemExit("backend 'mindspore' needs MindSpore: pip install 'deepspeech2[mindspore]' "
                             "(mindspore==2.10.0, numpy<2)") from None
        from .mindspore.engine import MindSporeBackend  # type: ignore[import-not-found]

        return MindSporeBackend(cfg, device)
    raise ValueError(f"unknown backend {cfg.backend!r}")


