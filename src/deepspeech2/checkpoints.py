"""Backend-neutral checkpoint helpers: which backend wrote a file, and its config.

PyTorch checkpoints (.pt) hold the config in their dict. MindSpore checkpoints (.ckpt)
hold it as a string entry ``deepspeech2_config`` (written with ``save_checkpoint``'s
``append_dict``; see backends/mindspore/engine.py), so the .ckpt alone is enough, as
the .pt is. A .ckpt without one (the official pretrained checkpoint, or one saved by
the course's code) is read with configs/mindspore_official.yaml, the network it was
trained with.
"""

from __future__ import annotations

from pathlib import Path

from .config import OFFICIAL_CONFIG, Config, load_config

MINDSPORE_MISSING = ("MindSpore checkpoints need MindSpore: pip install 'deepspeech2[mindspore]' "
                     "(mindspore==2.10.0, numpy<2)")


def backend_of(path: str | Path) -> str:
    suffix = Path(path).suffix
    if suffix == ".pt":
        return "torch"
    if suffix == ".ckpt":
        return "mindspore"
    raise ValueError(f"{path}: unknown checkpoint type {suffix!r} (expected .pt for PyTorch or .ckpt for MindSpore)")


def read_config(path: str | Path) -> Config:
    """The config saved inside a checkpoint; its ``backend`` is the one that reads the file."""
    kind = backend_of(path)
    if kind == "torch":
        from .backends.torch.engine import load_checkpoint_file

        ckpt = load_checkpoint_file(path)
        cfg = Config.from_dict(ckpt["config"], f"{path} (config)")
    else:
        try:
            import mindspore  # noqa: F401
        except ImportError:
            raise SystemExit(MINDSPORE_MISSING) from None
        from .backends.mindspore.engine import checkpoint_metadata, official_config_note

        meta = checkpoint_metadata(path)
        if "config" in meta:
            cfg = Config.from_dict(meta["config"], f"{path} (config)")
        else:
            official_config_note(path)
            cfg = load_config(OFFICIAL_CONFIG)
    cfg.backend = kind
    return cfg
