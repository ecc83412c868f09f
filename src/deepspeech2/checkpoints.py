"""Backend-neutral checkpoints: which backend wrote a file, its config, a backend loaded with it,
and conversion between the two formats (``ds2 convert``).

This module sits above both backends and dispatches to them; the backends never import it.

PyTorch checkpoints (.pt) hold the config in their dict. MindSpore checkpoints (.ckpt)
hold it as a string entry ``deepspeech2_config`` (written with ``save_checkpoint``'s
``append_dict``; see backends/mindspore/engine.py), so the .ckpt alone is enough, as
the .pt is. A .ckpt without one (the official pretrained checkpoint, or one saved by
the course's code) is read with configs/mindspore_official.yaml, the network it was
trained with.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
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


def load_backend(checkpoint: str | Path, cache_dir: str | None = None, device: str | None = None):
    """(config, backend) for inference with ``checkpoint``'s weights (on the CPU unless its config or
    ``device`` names a device); ``cache_dir``: the feature cache to use instead of the saved one."""
    from .backends.base import create_backend

    cfg = read_config(checkpoint)
    if cache_dir:
        cfg.data.cache_dir = str(cache_dir)
    backend = create_backend(cfg, device or ("cpu" if cfg.train.device == "auto" else None))
    backend.load(Path(checkpoint), training_state=False)
    return cfg, backend


def convert_checkpoint(source: str | Path, dest: str | Path) -> dict:
    """A MindSpore .ckpt -> a PyTorch .pt, or back; weights and config (the backend set to
    the new format's), not the optimizer state. Returns {"source", "dest", "parameters"}."""
    source, dest = Path(source), Path(dest)
    src_kind, dst_kind = backend_of(source), backend_of(dest)
    if src_kind == dst_kind:
        raise ValueError(f"{source} and {dest} are both {src_kind} checkpoints; convert goes .ckpt <-> .pt")
    cfg = read_config(source)
    cfg.backend = dst_kind
    if dst_kind == "torch":
        from .backends.mindspore.ckpt_file import split_checkpoint
        from .backends.mindspore.convert import as_torch_tensors, torch_from_mindspore
        from .backends.mindspore.engine import read_ckpt
        from .backends.torch.engine import TorchBackend, check_state_dict

        network, _, _ = split_checkpoint(read_ckpt(source))
        state = as_torch_tensors(torch_from_mindspore(network, cfg))
        backend = TorchBackend(cfg, "cpu")
        check_state_dict(str(source), backend.model, state)
        backend.model.load_state_dict(state)
        backend.save(dest, {})
    else:
        from .backends.mindspore.engine import MindSporeBackend

        backend = MindSporeBackend(cfg, "cpu")
        backend.load_pretrained(source)
        backend.save(dest, {})
    return {"source": str(source), "dest": str(dest), "parameters": backend.num_parameters()}


def as_backend(path: str | Path, backend: str, workdir: str | Path | None = None) -> Path:
    """``path`` if it is a ``backend`` checkpoint, else a converted copy in ``workdir``
    (a new temporary folder by default): how one backend evaluates, exports or fine-tunes
    the other's checkpoints."""
    path = Path(path)
    if backend_of(path) == backend:
        return path
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="ds2-convert-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    folder = Path(workdir)
    dest = folder / (path.stem + (".pt" if backend == "torch" else ".ckpt"))
    convert_checkpoint(path, dest)
    return dest
