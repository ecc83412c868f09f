"""Reading model files that may be damaged or hostile, with errors that name the file.

A ``.pt`` file is a zip of tensors plus a pickle, and a pickle can call any Python
function while it is read. ``load_torch_file`` reads with ``torch.load(weights_only=True)``,
whose unpickler allows tensors and plain data only, and turns its failures into one of
two messages of ours: a file that asks for a Python callable is refused as unsafe (and we
never suggest loading it another way), anything else unreadable is reported as truncated
or corrupted. ``open_onnx_session`` does the same for ONNX models. Used by both backends'
checkpoint readers, ``checkpoints.py`` and the ONNX contract; needs torch only when a
``.pt`` is read and onnxruntime only when a model is opened.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any


class ModelFileError(ValueError):
    """A checkpoint or model file that cannot be used; the message starts with its path."""


class UnsafeModelFileError(ModelFileError):
    """A file whose loading would run code named inside it: refused, never executed."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    if not path.is_file():
        raise ModelFileError(f"{path}: is not a file (a {what} is one file)")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes), not a {what}; "
                             "a run killed while writing leaves its previous checkpoint, use that one")


def refusal(path: str | Path, callables: list[str]) -> UnsafeModelFileError:
    """The error for a file whose pickle would import and call ``callables``."""
    named = ", ".join(callables) if callables else "a Python callable"
    return UnsafeModelFileError(
        f"{path}: refused, not loaded: reading this file would import and call {named}, and a file that calls "
        f"functions while it is read can do anything on this computer (run programs, write or delete files). "
        f"A deepspeech2 checkpoint holds only tensors, numbers and strings, so this "
        f"file was made by something else or altered. Nothing in it was executed. Use a checkpoint written by "
        f"ds2 train or ds2 convert, or ask whoever sent this file for one.")


def load_torch_file(path: str | Path, what: str = "PyTorch checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors of ours.

    FileNotFoundError when missing; UnsafeModelFileError for a pickle that calls code
    (nothing is executed); ModelFileError for a truncated, corrupted or foreign file.
    """
    import torch

    path = Path(path)
    _check_exists(path, what)
    try:
        # A static disassembly of the pickle: the callables it would import, running nothing.
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        unsafe = []  # not a zip, or a torn one: torch.load below says which
    if unsafe:
        raise refusal(path, sorted(set(unsafe)))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        callables = re.findall(r"GLOBAL ([\w.]+)", str(e))
        if callables:
            raise refusal(path, sorted(set(callables))) from None
        raise ModelFileError(f"{path}: cannot read this {what}: its pickled data is corrupted "
                             f"({_corruption_detail(e)})") from None
    except Exception as e:  # truncated zip, bit flips, a file of another kind
        raise ModelFileError(f"{path}: cannot read this {what}: the file is truncated, corrupted or not a PyTorch "
                             f"file ({_corruption_detail(e)})") from None


def _corruption_detail(error: BaseException) -> str:
    text = str(error)
    # torch's own wording suggests retrying without weights_only; keep only the finding itself.
    found = re.search(r"(Unsupported operand \d+|failed finding central directory|"
                      r"failed reading zip archive[^.]*|invalid header[^.]*|file not found[^.]*)", text)
    return found.group(1) if found else f"{type(error).__name__}: {_first_line(error)}"[:200]


def open_onnx_session(path: str | Path, options=None, providers: list[str] | None = None):
    """``onnxruntime.InferenceSession`` with errors of ours (missing, truncated, not ONNX)."""
    import onnxruntime as ort

    path = Path(path)
    _check_exists(path, "ONNX model")
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes with C++ messages
        detail = _first_line(e).removeprefix("[ONNXRuntimeError] : ")
        raise ModelFileError(f"{path}: cannot load this ONNX model: the file is truncated, corrupted or not "
                             f"ONNX ({detail})") from None
