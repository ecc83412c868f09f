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


class CheckpointMismatch(ValueError):
    """A checkpoint whose parameters do not fit the configured network."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str], misshaped: list[str]):
        parts = [f"{path} does not fit the configured network:"]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                shown = ", ".join(names[:12]) + (f" … (+{len(names) - 12})" if len(names) > 12 else "")
                parts.append(f"  {title} ({len(names)}): {shown}")
        super().__init__("\n".join(parts))


def check_parameter_shapes(path: str, expected: dict[str, tuple], found: dict[str, tuple]) -> None:
    """Raise CheckpointMismatch unless ``found`` has exactly the names and shapes of ``expected``."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshaped = [f"{k} {tuple(found[k])} vs {tuple(shape)}" for k, shape in expected.items()
                 if k in found and tuple(found[k]) != tuple(shape)]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(path, missing, unexpected, misshaped)


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


