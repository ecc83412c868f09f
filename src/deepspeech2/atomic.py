"""Atomic file writes: readers (and a run killed mid-write) see the old file or the new one, never a torn one.

Every file this toolkit writes for later use (manifests, configs, metrics, checkpoints of both backends,
exported models, plots) goes through here: written to a temporary file in the same folder, then renamed
over the target (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that readers see either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer that wants a file name (torch.save, MindSpore, ONNX,
    matplotlib); renamed over ``path`` when the block ends without an error, removed otherwise. ``suffix``:
    the temporary file's extension, for writers that choose the format by it. ``mode``: permissions to set
    before the rename (MindSpore writes its files read-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}" if suffix != ".tmp"
                         else f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
