"""deepspeech.pytorch checkpoints (SeanNaren/deepspeech.pytorch) -> this toolkit's PyTorch checkpoints.

V3 releases are PyTorch Lightning ``.ckpt`` files: ``state_dict`` with the names of its
``DeepSpeech`` module (``conv.seq_module.*``, ``rnns.*``, ``lookahead.*``, ``fc.*``) and
``hyper_parameters`` holding its constructor arguments, ``labels`` plus OmegaConf
``DictConfig`` objects (``model_cfg``, ``spect_cfg``, ``optim_cfg``). V2 ``.pth`` files hold
the same ``state_dict`` with ``labels``, ``audio_conf``, ``rnn_type``… at the top level.

Reading never runs code from the file. ``torch.load(weights_only=True)`` refuses every
class it does not know; the few the file needs (OmegaConf containers and nodes, Lightning's
and deepspeech.pytorch's config classes and enums, ``typing`` markers, and the
``torch.nn.LSTM``/``GRU``/``RNN`` classes an ``RNNType`` enum holds) are allowed as *inert
stand-ins*: classes of ours, registered under those names, that only record what the pickle
hands them; ``dict``, ``list``… and ``defaultdict``, which OmegaConf's metadata names, and
Lightning's ``AttributeDict`` are given as plain types. Any other name (``os.system``,
``builtins.exec``…) refuses the file before a byte of it is unpickled. The stand-ins are
then turned into plain dicts, lists and strings.

The network (deepspeech_pytorch/model.py) maps one to one onto ours with
``conv_activation=hardtanh`` (Hardtanh(0, 20)), ``conv_bias`` (its convolutions have biases),
``rnn_batchnorm`` (BatchNorm before every RNN but the first), summed bidirectional outputs,
``fc_batchnorm`` (BatchNorm before the bias-free output layer), blank ``_`` first, and for
unidirectional models its Lookahead of ``context`` frames, which is ours with
``lookahead_context = context - 1`` (ours counts future frames besides the current one).
Its features are ours: n_fft = sample_rate x window_size, hop = sample_rate x window_stride,
the window it names, log1p magnitude, per-utterance mean/std normalisation (it divides by
torch's unbiased std, we by the population std: a factor sqrt(N/(N-1)), under 1e-4 for one
second of audio).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...config import Config
from ...text import BLANK, CHARACTERS

# Modules whose classes a deepspeech.pytorch checkpoint's pickle names; each becomes an inert stand-in.
STAND_IN_MODULES = ("omegaconf", "pytorch_lightning", "lightning", "lightning_fabric", "deepspeech_pytorch",
                    "typing", "hydra")
RNN_CLASSES = {"torch.nn.modules.rnn.LSTM": "lstm", "torch.nn.modules.rnn.GRU": "gru",
               "torch.nn.modules.rnn.RNN": "rnn"}
# Plain types OmegaConf's metadata pickles by name (``resolver_cache = defaultdict(dict)``): building them
# runs nothing but the type itself, so they are given as themselves (a defaultdict as a plain dict).
PLAIN_TYPES: dict[str, Any] = {f"builtins.{t.__name__}": t for t in (dict, list, tuple, int, float, str, bool,
                                                                     frozenset)}


class PlainDict(dict):
    """Stands in for dict subclasses (``defaultdict``, Lightning's ``AttributeDict``): building one gives
    a plain dict, which the weights-only unpickler lets the pickle fill."""

    def __new__(cls, *args: Any, **kwargs: Any) -> dict:  # type: ignore[misc]
        return {}


PLAIN_TYPES["collections.defaultdict"] = PlainDict
LABELS = [BLANK, *CHARACTERS]  # labels.json of deepspeech.pytorch: blank "_" first
WINDOWS = ("hamming", "hann")
# Its validation metrics are modules too (``self.wer``, ``self.cer``); Lightning versions whose metric
# states were persistent saved their counters (wer.wer, wer.n_tokens…) with the weights: not network.
METRIC_MODULES = ("wer", "cer")
LEGACY_MAGIC = b"\x80\x02\x8a\n"  # pickle protocol 2, then torch's legacy magic number (a 10-byte long)
GATES = {4: "lstm", 3: "gru", 1: "rnn"}  # weight_hh rows per hidden unit


class UnsafeCheckpointError(ValueError):
    """A checkpoint whose pickle would call something outside what the format needs."""


class StandIn:
    """Takes the place of a class named in the pickle: records its arguments and state, runs nothing."""

    qualified_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.qualified_name} args={self.args!r}>"


def _stand_in(name: str) -> type[StandIn]:
    return type(name.rsplit(".", 1)[-1], (StandIn,), {"qualified_name": name})


def _allowed(name: str) -> bool:
    return name.split(".", 1)[0] in STAND_IN_MODULES or name in RNN_CLASSES or name in PLAIN_TYPES


def _safe_global(name: str) -> tuple[Any, str]:
    if name in PLAIN_TYPES:
        return PLAIN_TYPES[name], name
    return (PlainDict if name.endswith(".AttributeDict") else _stand_in(name)), name


def plain(obj: Any, depth: int = 0) -> Any:
    """Stand-ins (OmegaConf containers and nodes, enums, dataclasses) -> dicts, lists, values;
    a class -> its dotted name. Parents (``_parent``) and metadata are not followed."""
    if depth > 50:
        return None
    if isinstance(obj, type) and issubclass(obj, StandIn):
        return obj.qualified_name
    if isinstance(obj, StandIn):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (__dict__, slots)
        if isinstance(state, dict) and "_content" in state:  # DictConfig / ListConfig
            return plain(state["_content"], depth + 1)
        if isinstance(state, dict) and "_val" in state:  # a ValueNode
            return plain(state["_val"], depth + 1)
        if obj.args:  # an enum member: RNNType(torch.nn.LSTM), SpectrogramWindow("hamming")
            return plain(obj.args[0], depth + 1) if len(obj.args) == 1 else [plain(a, depth + 1) for a in obj.args]
        if isinstance(state, dict):
            return {k: plain(v, depth + 1) for k, v in state.items() if not str(k).startswith("_")}
        return obj.qualified_name
    if isinstance(obj, dict):
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    return obj


def is_torch_file(path: str | Path) -> bool:
    """True for files torch.save wrote (a zip archive, or the legacy format of torch < 1.6): how a
    deepspeech.pytorch ``.ckpt`` is told from a MindSpore ``.ckpt`` (protobuf)."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    return head == LEGACY_MAGIC or zipfile.is_zipfile(path)


def _refused_global(error: Exception) -> str | None:
    """The name the weights-only unpickler stopped at (it writes builtins without their module)."""
    match = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    if not match:
        return None
    return match.group(1) if "." in match.group(1) else f"builtins.{match.group(1)}"


def _unsafe(path: Path, names: list[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused: its pickle calls {', '.join(sorted(names)[:6])}, which a deepspeech.pytorch checkpoint "
        "never needs (loading it could run code); nothing from it was executed")


def _weights_only_load(path: Path, names: list[str]) -> Any:
    with torch.serialization.safe_globals([_safe_global(n) for n in names]):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_deepspeech_pytorch(path: str | Path) -> dict:
    """The checkpoint's dict with tensors as tensors and everything else plain Python; no code from the file runs.

    Raises UnsafeCheckpointError when its pickle names anything but the few classes the
    format needs, ValueError for files that are not such checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    with path.open("rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            try:
                # A static disassembly of the pickle: the names it would import, running nothing.
                names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception as e:
                raise ValueError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
            refused = [n for n in names if not _allowed(n)]
            if refused:
                raise _unsafe(path, refused)
            ckpt = _weights_only_load(path, names)
        elif head == LEGACY_MAGIC:
            # torch's pre-1.6 format (V2 files) cannot be listed statically: load, and at each name the
            # unpickler stops at, allow it (a stand-in) and start again, or refuse the file.
            while True:
                try:
                    ckpt = _weights_only_load(path, names)
                    break
                except pickle.UnpicklingError as e:
                    name = _refused_global(e)
                    if name is None or name in names or len(names) > 64:
                        raise
                    if not _allowed(name):
                        raise _unsafe(path, [name]) from None
                    names.append(name)
        else:
            raise ValueError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip nor its legacy format), "
                             "so not a deepspeech.pytorch V2/V3 file")
    except pickle.UnpicklingError:
        # Not torch's text: it advises turning weights-only loading off, the one thing not to do here.
        raise UnsafeCheckpointError(f"{path}: refused: its pickle needs something the safe unpickler does not allow "
                                    "(loading it fully could run code); nothing from it was executed") from None
    except (UnsafeCheckpointError, ValueError):
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path}: no 'state_dict' inside: not a deepspeech.pytorch checkpoint")
    out = {k: plain(v) for k, v in ckpt.items() if k != "state_dict"}
    out["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}
    return out


@dataclass
class DeepSpeechPytorchModel:
    """What a deepspeech.pytorch checkpoint says about its network and features."""

    path: str
    format: str  # "V3 (Lightning)" or "V2"
    state_dict: dict
    labels: list[str]
    rnn_type: str
    hidden_size: int
    hidden_layers: int
    bidirectional: bool
    lookahead_context: int  # deepspeech.pytorch's (kernel width); 0 for bidirectional models
    sample_rate: int
    window_size: float
    window_stride: float
    window: str
    extra: dict = field(default_factory=dict)

    def config(self) -> Config:
        cfg = Config.from_dict({
            "name": f"deepspeech.pytorch-{Path(self.path).stem}",
            "backend": "torch",
            "audio": {"sample_rate": self.sample_rate, "n_fft": int(self.sample_rate * self.window_size),
                      "hop_length": int(self.sample_rate * self.window_stride), "window": self.window,
                      "normalize": True},
            "text": {"blank": "first"},
            "model": {"conv_channels": [32, 32], "conv_kernels": [[41, 11], [21, 11]],
                      "conv_strides": [[2, 2], [2, 1]], "conv_activation": "hardtanh", "conv_bias": True,
                      "rnn_type": self.rnn_type, "rnn_hidden": self.hidden_size, "rnn_layers": self.hidden_layers,
                      "bidirectional": self.bidirectional, "rnn_batchnorm": True,
                      "lookahead_context": max(self.lookahead_context - 1, 0) if not self.bidirectional else 20,
                      "fc_batchnorm": True, "mask_padding": True},
        }, f"{self.path} (deepspeech.pytorch)")
        return cfg


def _rnn_layers(state: dict) -> int:
    layers = 0
    while f"rnns.{layers}.rnn.weight_hh_l0" in state:
        layers += 1
    return layers


def describe(path: str | Path, ckpt: dict | None = None) -> DeepSpeechPytorchModel:
    """Read a deepspeech.pytorch checkpoint: its network from the weights' names and shapes,
    cross-checked with its hyper-parameters; labels and spectrogram settings from those."""
    path = Path(path)
    ckpt = load_deepspeech_pytorch(path) if ckpt is None else ckpt
    state = ckpt["state_dict"]
    hparams = ckpt.get("hyper_parameters")
    fmt = "V3 (Lightning)" if isinstance(hparams, dict) else "V2"
    hparams = hparams if isinstance(hparams, dict) else {}
    layers = _rnn_layers(state)
    if layers == 0 or "conv.seq_module.0.weight" not in state:
        some = ", ".join(list(state)[:5]) or "none"
        raise ValueError(f"{path}: not deepspeech.pytorch's DeepSpeech network (no conv.seq_module.0.weight / "
                         f"rnns.0.rnn.weight_hh_l0; first parameters: {some})")
    rows, hidden = state["rnns.0.rnn.weight_hh_l0"].shape
    if rows % hidden or rows // hidden not in GATES:
        raise ValueError(f"{path}: rnns.0.rnn.weight_hh_l0 has shape {tuple(state['rnns.0.rnn.weight_hh_l0'].shape)}"
                         ", which is no LSTM, GRU or RNN")
    rnn_type = GATES[rows // hidden]
    model_cfg = hparams.get("model_cfg") or {}
    named = model_cfg.get("rnn_type") if isinstance(model_cfg, dict) else None
    named = named or ckpt.get("rnn_type")
    if isinstance(named, str):
        named_type = RNN_CLASSES.get(named, named.rsplit(".", 1)[-1].lower())
        if named_type != rnn_type:
            raise ValueError(f"{path}: the hyper-parameters say rnn_type {named!r} but rnns.0.rnn.weight_hh_l0 "
                             f"{tuple(state['rnns.0.rnn.weight_hh_l0'].shape)} is a {rnn_type.upper()}")
    bidirectional = "rnns.0.rnn.weight_hh_l0_reverse" in state
    lookahead = state.get("lookahead.0.conv.weight")
    context = int(lookahead.shape[-1]) if lookahead is not None else 0

    labels = hparams.get("labels", ckpt.get("labels"))
    if isinstance(labels, str):  # V2 kept labels.json's characters as one string
        labels = list(labels)
    if labels is None:
        labels = LABELS
    labels = list(labels)
    if labels != LABELS:
        raise ValueError(f"{path}: labels {''.join(labels)!r}: this toolkit's alphabet is {''.join(LABELS)!r} "
                         "(blank '_' first, apostrophe, A-Z, space), as in deepspeech.pytorch's labels.json")

    spect = hparams.get("spect_cfg") or ckpt.get("audio_conf") or {}
    if not isinstance(spect, dict):
        spect = {}
    sample_rate = int(spect.get("sample_rate", 16000))
    window_size = float(spect.get("window_size", 0.02))
    window_stride = float(spect.get("window_stride", 0.01))
    window = str(spect.get("window", "hamming")).rsplit(".", 1)[-1]
    if window not in WINDOWS:
        raise ValueError(f"{path}: spectrogram window {window!r}: supported windows are {', '.join(WINDOWS)}")
    return DeepSpeechPytorchModel(str(path), fmt, state, labels, rnn_type, int(hidden), layers, bidirectional,
                                  context, sample_rate, window_size, window_stride, window,
                                  {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"),
                                   "lightning_version": ckpt.get("pytorch-lightning_version")})


def torch_state_from_deepspeech_pytorch(state: dict, layers: int) -> dict:
    """deepspeech.pytorch parameter names -> ours; names it does not know pass through, so that the
    shape check reports them."""
    mapping: dict[str, str] = {}
    for i in range(2):  # Sequential(Conv2d, BatchNorm2d, Hardtanh) x 2
        mapping[f"conv.seq_module.{3 * i}."] = f"conv.convs.{i}."
        mapping[f"conv.seq_module.{3 * i + 1}."] = f"conv.norms.{i}."
    for i in range(layers):
        mapping[f"rnns.{i}.batch_norm.module."] = f"rnns.{i}.norm."
        mapping[f"rnns.{i}.rnn."] = f"rnns.{i}.rnn."
    mapping["lookahead.0.conv."] = "lookahead.conv."
    mapping["fc.0.module.0."] = "fc_norm."
    mapping["fc.0.module.1."] = "fc."
    out = {}
    for name, value in state.items():
        if name.split(".", 1)[0] in METRIC_MODULES:
            continue
        prefix = next((p for p in mapping if name.startswith(p)), None)
        out[mapping[prefix] + name[len(prefix):] if prefix else name] = value
    for name in [k for k in out if k.endswith(".running_mean")]:
        out.setdefault(name.removesuffix("running_mean") + "num_batches_tracked", torch.tensor(0))
    return out


def convert_deepspeech_pytorch(source: str | Path, dest: str | Path) -> dict:
    """A deepspeech.pytorch V3 ``.ckpt`` (or V2 ``.pth``) -> our PyTorch ``.pt`` (written atomically).
    Returns {"source", "dest", "parameters", "format", "config"}."""
    from .engine import TorchBackend, check_state_dict

    info = describe(source)
    cfg = info.config()
    backend = TorchBackend(cfg, "cpu")
    state = torch_state_from_deepspeech_pytorch(info.state_dict, info.hidden_layers)
    check_state_dict(str(source), backend.model, state)
    backend.model.load_state_dict(state)
    backend.save(Path(dest), {"converted_from": str(source), "source_format": f"deepspeech.pytorch {info.format}",
                              **{k: v for k, v in info.extra.items() if v is not None}})
    return {"source": str(source), "dest": str(dest), "parameters": backend.num_parameters(),
            "format": f"deepspeech.pytorch {info.format}", "config": cfg}

