"""Backend-neutral checkpoint helpers: which backend wrote a file, and its config."""

from __future__ import annotations

from pathlib import Path

from .config import Config


def backend_of(path: str | Path) -> str:
    suffix = Path(path).suffix
    if suffix == ".pt":
        return "torch"
    if suffix == ".ckpt":
        return "mindspore"
    raise ValueError(f"{path}: unknown checkpoint type {suffix!r} (expected .pt for PyTorch or .ckpt for MindSpore)")


def read_config(path: str | Path) -> Config:
    """The config saved inside a checkpoint."""
    if backend_of(path) == "torch":
        from .backends.torch.engine import load_checkpoint_file

        ckpt = load_checkpoint_file(path)
        return Config.from_dict(ckpt["config"], f"{path} (config)")
    raise NotImplementedError("reading MindSpore checkpoints needs the MindSpore backend")
