"""Read a MindSpore ``.ckpt`` file without MindSpore: its protobuf, parsed by hand.

A checkpoint is one protobuf message (MindSpore's ``checkpoint.proto``)::

    message Checkpoint { message Value { string tag = 1; TensorProto tensor = 2; }
                         repeated Value value = 1; }
    message TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3; }

Tensors larger than MindSpore's slice size are saved as consecutive values with the same
tag, concatenated on reading (as ``mindspore.load_checkpoint`` does); strings (``append_dict``
entries) are numpy unicode bytes (UTF-32). Fields this reader does not know (map tensors,
CRC numbers of newer versions) are skipped. This is what lets the PyTorch-only install
(``.venv``) convert the official ``DeepSpeech.ckpt`` (``ds2 models``, ``--model
mindspore-official``); encrypted checkpoints need MindSpore itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DTYPES = {
    "Int8": np.int8, "UInt8": np.uint8, "Uint8": np.uint8, "Int16": np.int16, "UInt16": np.uint16,
    "Uint16": np.uint16, "Int32": np.int32, "UInt32": np.uint32, "Uint32": np.uint32, "Int64": np.int64,
    "UInt64": np.uint64, "Uint64": np.uint64, "Float16": np.float16, "Float32": np.float32,
    "Float64": np.float64, "Bool": np.bool_,
}


META_PREFIX = "deepspeech2_"
# Entries of a MindSpore checkpoint that are training state, not network weights: the
# optimizers' slots (Adam, AdamWeightDecay, Momentum/SGD), their step counters and learning
# rate, and the loss-scale cells' state (official checkpoints hold them too).
OPTIMIZER_PREFIXES = ("moment1.", "moment2.", "adam_m.", "adam_v.", "moments.", "accum.", "stat.")
OPTIMIZER_NAMES = ("beta1_power", "beta2_power", "learning_rate", "global_step", "scale_sense", "loss_scale",
                   "current_iterator_step", "last_overflow_iterator_step", "epoch_num", "step_num")


def is_training_state(name: str) -> bool:
    return name.startswith(OPTIMIZER_PREFIXES) or name in OPTIMIZER_NAMES


def split_checkpoint(params: dict) -> tuple[dict, dict, dict]:
    """A loaded .ckpt -> (network parameters, training state, metadata strings)."""
    network, state, meta = {}, {}, {}
    for name, value in params.items():
        if name.startswith(META_PREFIX):
            meta[name[len(META_PREFIX):]] = value
        elif is_training_state(name):
            state[name] = value
        else:
            network[name] = value
    return network, state, meta


class CkptFormatError(ValueError):
    """A file that is not a (readable) MindSpore checkpoint; the message names it."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise IndexError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _fields(data: memoryview):
    """(field number, wire type, value) of one message; length-delimited values as memoryviews."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = bytes(data[pos: pos + 8]), pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise IndexError("truncated field")
            value, pos = data[pos: pos + length], pos + length
        elif wire == 5:
            value, pos = bytes(data[pos: pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor(data: memoryview) -> tuple[list[int], str, bytes]:
    dims: list[int] = []
    dtype, content = "", b""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed repeated int64
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                dims.append(dim)
        elif number == 2 and wire == 2:
            dtype = bytes(value).decode("utf-8")
        elif number == 3 and wire == 2:
            content = bytes(value)
    return dims, dtype, content


def _decode(name: str, dims: list[int], dtype: str, content: bytes) -> np.ndarray | str:
    if dtype == "str":
        if len(content) % 4 == 0:  # numpy unicode: UTF-32 little-endian
            return content.decode("utf-32-le").rstrip("\x00")
        return content.decode("utf-8")
    if dtype == "BFloat16":
        raw = np.frombuffer(content, dtype=np.uint16).astype(np.uint32) << 16
        array = raw.view(np.float32)
    elif dtype in DTYPES:
        array = np.frombuffer(content, dtype=DTYPES[dtype])
    else:
        raise ValueError(f"parameter {name!r} has tensor type {dtype!r}, which this reader does not know")
    shape = [d for d in dims if d != 0] if dims == [0] else dims
    if int(np.prod(shape)) != array.size:
        if array.size == 1 and dims in ([0], [1], []):
            shape = [] if dims != [1] else [1]
        else:
            raise ValueError(f"parameter {name!r}: {array.size} values do not fill shape {dims}")
    return array.reshape(shape).copy()


def read_ckpt_file(path: str | Path) -> dict[str, np.ndarray | str]:
    """Every entry of a MindSpore checkpoint: parameters as numpy arrays, strings as str."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    data = memoryview(path.read_bytes())
    if data[:2] == b"PK":
        raise CkptFormatError(f"{path}: a zip file (a PyTorch checkpoint?), not a MindSpore checkpoint")
    parts: dict[str, tuple[list[int], str, list[bytes]]] = {}
    last = None
    try:
        for number, wire, value in _fields(data):
            if number != 1 or wire != 2:
                continue  # e.g. a CRC field of newer MindSpore versions
            tag, tensor = None, None
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    tag = bytes(v).decode("utf-8")
                elif n == 2 and w == 2:
                    tensor = _tensor(v)
            if tag is None or tensor is None:
                continue  # map tensors and other values this reader does not use
            dims, dtype, content = tensor
            if tag == last:  # a slice of a large tensor: continue it
                parts[tag][2].append(content)
            else:
                parts[tag] = (dims, dtype, [content])
            last = tag
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        raise CkptFormatError(f"{path}: not a readable MindSpore checkpoint ({e})") from None
    if not parts:
        raise CkptFormatError(f"{path}: not a MindSpore checkpoint (no parameters found)")
    try:
        return {tag: _decode(tag, dims, dtype, b"".join(chunks)) for tag, (dims, dtype, chunks) in parts.items()}
    except ValueError as e:
        raise CkptFormatError(f"{path}: {e}") from None


def write_ckpt_file(path: str | Path, params: dict[str, np.ndarray | str]) -> None:
    """Write ``params`` in the same format (tests and tools; MindSpore reads it)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    names = {np.dtype(v): k for k, v in reversed(list(DTYPES.items()))}
    body = bytearray()
    for tag, value in params.items():
        if isinstance(value, str):
            dims, dtype, content = [0], "str", np.array(value).tobytes()
        else:
            array = np.ascontiguousarray(value)
            dims, dtype, content = list(array.shape) or [1], names[array.dtype], array.tobytes()
        tensor = b"".join(varint(1 << 3) + varint(d) for d in dims) + field(2, dtype.encode()) + field(3, content)
        body += field(1, field(1, tag.encode()) + field(2, tensor))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(bytes(body))
    os.replace(tmp, path)


def convert_to_torch_without_mindspore(source: str | Path, dest: str | Path) -> dict:
    """A MindSpore ``.ckpt`` (the official ``DeepSpeech.ckpt``, MindSpore 1.x or 2.x names, or
    one of ours) -> our PyTorch ``.pt``, read by this module instead of MindSpore. The
    config is the one inside the file, or configs/mindspore_official.yaml for the official
    checkpoint. Returns {"source", "dest", "parameters"}."""
    import json

    from ...config import OFFICIAL_CONFIG, Config, load_config
    from ..torch.engine import TorchBackend, check_state_dict
    from .convert import as_torch_tensors, torch_from_mindspore

    params = read_ckpt_file(source)
    network, _, meta = split_checkpoint(params)
    network = {k: v for k, v in network.items() if isinstance(v, np.ndarray)}
    config_text = meta.get("config") or params.get(META_PREFIX + "config")
    if isinstance(config_text, str):
        cfg = Config.from_dict(json.loads(config_text), f"{source} (config)")
    else:
        cfg = load_config(OFFICIAL_CONFIG)
    cfg.backend = "torch"
    backend = TorchBackend(cfg, "cpu")
    state = as_torch_tensors(torch_from_mindspore(network, cfg))
    check_state_dict(str(source), backend.model, state)
    backend.model.load_state_dict(state)
    backend.save(Path(dest), {"converted_from": str(source), "source_format": "mindspore"})
    return {"source": str(source), "dest": str(dest), "parameters": backend.num_parameters()}
