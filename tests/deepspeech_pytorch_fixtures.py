"""deepspeech.pytorch checkpoints for the tests, built here from its published architecture.

``ReferenceDeepSpeech`` is the network of deepspeech.pytorch's ``deepspeech_pytorch/model.py``
(V3) written from its description, with its module names, so its ``state_dict`` has the exact
key layout of the released checkpoints (``conv.seq_module.N.*``, ``rnns.N.batch_norm.module.*``,
``rnns.N.rnn.*``, ``lookahead.0.conv.weight``, ``fc.0.module.{0,1}.*``), and its forward pass
(packed sequences, masks after every convolution module, softmax in eval mode) is the
independent reference the converted model must reproduce.

``save_lightning_checkpoint`` writes it the way PyTorch Lightning 1.x does for
deepspeech.pytorch: ``torch.save`` of a dict with ``state_dict``, optimizer and scheduler
states, a callbacks dict keyed by a class, and ``hyper_parameters`` holding OmegaConf
``DictConfig`` objects. omegaconf, deepspeech_pytorch and pytorch_lightning are not installed,
so ``fake_packages()`` puts look-alike modules under their names into ``sys.modules`` while
pickling (classes whose pickles have the same shape: NEWOBJ + BUILD of ``__dict__`` for
containers, nodes and metadata dataclasses, enums by value) and removes them afterwards,
so the loader sees what it would see on a machine without those packages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import sys
import types
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

LABELS = list("_'ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
RNN_MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


# --- the reference network -------------------------------------------------------------------


class SequenceWise(nn.Module):
    """Applies ``module`` to (T*N, H) and gives (T, N, H) back."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        return self.module(x.reshape(steps * batch, -1)).reshape(steps, batch, -1)


class MaskConv(nn.Module):
    """Runs ``seq_module`` module by module, zeroing time steps past each length after each one."""

    def __init__(self, seq_module: nn.Sequential):
        super().__init__()
        self.seq_module = seq_module

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for module in self.seq_module:
            x = module(x)
            keep = torch.arange(x.shape[3])[None, :] < lengths[:, None]
            x = x * keep[:, None, None, :].to(x.dtype)
        return x


class BatchRNN(nn.Module):
    def __init__(self, input_size: int, hidden: int, rnn: type, bidirectional: bool, batch_norm: bool):
        super().__init__()
        self.batch_norm = SequenceWise(nn.BatchNorm1d(input_size)) if batch_norm else None
        self.rnn = rnn(input_size=input_size, hidden_size=hidden, bidirectional=bidirectional, bias=True)
        self.bidirectional = bidirectional

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.batch_norm is not None:
            x = self.batch_norm(x)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        x, _ = pad_packed_sequence(self.rnn(packed)[0], total_length=x.shape[0])
        if self.bidirectional:
            x = x.reshape(x.shape[0], x.shape[1], 2, -1).sum(2)
        return x


class Lookahead(nn.Module):
    """A depthwise convolution over the current and the next ``context - 1`` steps."""

    def __init__(self, features: int, context: int):
        super().__init__()
        self.context = context
        self.conv = nn.Conv1d(features, features, kernel_size=context, groups=features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, N, H)
        y = nn.functional.pad(x.permute(1, 2, 0), (0, self.context - 1))
        return self.conv(y).permute(2, 0, 1)


class ReferenceDeepSpeech(nn.Module):
    def __init__(self, rnn_type: str = "lstm", hidden: int = 24, layers: int = 3, bidirectional: bool = True,
                 context: int = 4, sample_rate: int = 8000, window_size: float = 0.02, classes: int = 29):
        super().__init__()
        self.bidirectional = bidirectional
        self.conv = MaskConv(nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=(41, 11), stride=(2, 2), padding=(20, 5)),
            nn.BatchNorm2d(32),
            nn.Hardtanh(0, 20),
            nn.Conv2d(32, 32, kernel_size=(21, 11), stride=(2, 1), padding=(10, 5)),
            nn.BatchNorm2d(32),
            nn.Hardtanh(0, 20),
        ))
        bins = math.floor(sample_rate * window_size / 2) + 1
        bins = (bins + 2 * 20 - 41) // 2 + 1
        bins = (bins + 2 * 10 - 21) // 2 + 1
        sizes = [32 * bins] + [hidden] * (layers - 1)
        self.rnns = nn.Sequential(*(BatchRNN(size, hidden, RNN_MODULES[rnn_type], bidirectional, i > 0)
                                    for i, size in enumerate(sizes)))
        self.lookahead = None if bidirectional else nn.Sequential(Lookahead(hidden, context), nn.Hardtanh(0, 20))
        self.fc = nn.Sequential(SequenceWise(nn.Sequential(nn.BatchNorm1d(hidden),
                                                           nn.Linear(hidden, classes, bias=False))))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for module in self.conv.seq_module:
            if isinstance(module, nn.Conv2d):
                k, s, p = module.kernel_size[1], module.stride[1], module.padding[1]
                lengths = (lengths + 2 * p - k) // s + 1
        return lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (N, F, T) -> probabilities (N, T', C) in eval mode, and output lengths."""
        out_lengths = self.output_lengths(lengths)
        x = self.conv(features.unsqueeze(1), out_lengths)
        n, c, f, t = x.shape
        x = x.reshape(n, c * f, t).permute(2, 0, 1)
        for rnn in self.rnns:
            x = rnn(x, out_lengths)
        if self.lookahead is not None:
            x = self.lookahead(x)
        x = self.fc(x).transpose(0, 1)
        return (x.softmax(-1) if not self.training else x), out_lengths


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics, so that every mapped tensor matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)
            elif ".batch_norm." in name or "seq_module.1." in name or "seq_module.4." in name \
                    or "fc.0.module.0." in name:
                base = 1.0 if name.endswith("weight") else 0.0
                tensor.copy_(base + torch.randn(tensor.shape, generator=gen) * 0.2)
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / math.sqrt(fan_in))
    return model.eval()


# --- look-alike omegaconf / deepspeech_pytorch / pytorch_lightning modules --------------------


def _classes() -> dict[str, dict[str, Any]]:
    """{module name: {attribute: object}} for the look-alike packages."""

    @dataclasses.dataclass
    class Metadata:
        ref_type: Any
        object_type: Any
        optional: bool
        key: Any
        flags: dict = dataclasses.field(default_factory=dict)
        flags_root: bool = False
        resolver_cache: dict = dataclasses.field(default_factory=lambda: defaultdict(dict))

    @dataclasses.dataclass
    class ContainerMetadata(Metadata):
        key_type: Any = None
        element_type: Any = None

    class Node:
        def __init__(self, parent: Any, metadata: Metadata):
            self.__dict__["_metadata"] = metadata
            self.__dict__["_parent"] = parent

    class ValueNode(Node):
        def __init__(self, value: Any, key: Any, parent: Any):
            super().__init__(parent, Metadata(ref_type=Any, object_type=None, optional=True, key=key))
            self.__dict__["_val"] = value

    class AnyNode(ValueNode):
        pass

    class IntegerNode(ValueNode):
        pass

    class FloatNode(ValueNode):
        pass

    class StringNode(ValueNode):
        pass

    class BooleanNode(ValueNode):
        pass

    class EnumNode(ValueNode):
        def __init__(self, value: enum.Enum, key: Any, parent: Any):
            super().__init__(value, key, parent)
            self.__dict__["enum_type"] = type(value)
            self.__dict__["fields"] = {member.name: member for member in type(value)}

    class BaseContainer(Node):
        def __getstate__(self) -> dict:  # as omegaconf's: the __dict__ without the flags cache
            state = dict(self.__dict__)
            state.pop("_flags_cache", None)
            return state

    def wrap(value: Any, key: Any, parent: Any) -> Any:
        if isinstance(value, dict):
            return DictConfig(value, key=key, parent=parent)
        if isinstance(value, (list, tuple)):
            return ListConfig(value, key=key, parent=parent)
        if isinstance(value, enum.Enum):
            return EnumNode(value, key, parent)
        for kind, node in ((bool, BooleanNode), (int, IntegerNode), (float, FloatNode), (str, StringNode)):
            if isinstance(value, kind):
                return node(value, key, parent)
        return AnyNode(value, key, parent)

    class DictConfig(BaseContainer):
        def __init__(self, content: dict, object_type: type | None = None, key: Any = None, parent: Any = None):
            super().__init__(parent, ContainerMetadata(ref_type=Any, object_type=object_type, optional=True,
                                                       key=key, key_type=Any, element_type=Any))
            self.__dict__["_flags_cache"] = None
            self.__dict__["_content"] = {k: wrap(v, k, self) for k, v in content.items()}

    class ListConfig(BaseContainer):
        def __init__(self, content: list, key: Any = None, parent: Any = None):
            super().__init__(parent, ContainerMetadata(ref_type=Any, object_type=list, optional=True, key=key,
                                                       key_type=int, element_type=Any))
            self.__dict__["_flags_cache"] = None
            self.__dict__["_content"] = [wrap(v, i, self) for i, v in enumerate(content)]

    class RNNType(enum.Enum):
        lstm = nn.LSTM
        rnn = nn.RNN
        gru = nn.GRU

    class SpectrogramWindow(enum.Enum):
        hamming = "hamming"
        hann = "hann"
        blackman = "blackman"
        bartlett = "bartlett"

    @dataclasses.dataclass
    class SpectConfig:
        sample_rate: int = 16000
        window_size: float = 0.02
        window_stride: float = 0.01
        window: SpectrogramWindow = SpectrogramWindow.hamming

    @dataclasses.dataclass
    class BiDirectionalConfig:
        rnn_type: RNNType = RNNType.lstm
        hidden_size: int = 1024
        hidden_layers: int = 5

    @dataclasses.dataclass
    class UniDirectionalConfig(BiDirectionalConfig):
        lookahead_context: int = 20

    @dataclasses.dataclass
    class AdamConfig:
        learning_rate: float = 1.5e-4
        learning_anneal: float = 0.99
        weight_decay: float = 1e-5
        eps: float = 1e-8
        betas: tuple = (0.9, 0.999)

    @dataclasses.dataclass
    class DeepSpeechConfig:
        seed: int = 123456

    class FileCheckpointHandler:
        pass

    class AttributeDict(dict):  # Lightning's hparams container, a dict subclass
        def __getattr__(self, key: str) -> Any:
            return self[key]

    return {
        "omegaconf": {"DictConfig": DictConfig, "ListConfig": ListConfig},
        "omegaconf.base": {"Metadata": Metadata, "ContainerMetadata": ContainerMetadata, "Node": Node},
        "omegaconf.basecontainer": {"BaseContainer": BaseContainer},
        "omegaconf.dictconfig": {"DictConfig": DictConfig},
        "omegaconf.listconfig": {"ListConfig": ListConfig},
        "omegaconf.nodes": {"ValueNode": ValueNode, "AnyNode": AnyNode, "IntegerNode": IntegerNode,
                            "FloatNode": FloatNode, "StringNode": StringNode, "BooleanNode": BooleanNode,
                            "EnumNode": EnumNode},
        "deepspeech_pytorch": {},
        "deepspeech_pytorch.enums": {"RNNType": RNNType, "SpectrogramWindow": SpectrogramWindow},
        "deepspeech_pytorch.configs": {},
        "deepspeech_pytorch.configs.train_config": {
            "SpectConfig": SpectConfig, "BiDirectionalConfig": BiDirectionalConfig,
            "UniDirectionalConfig": UniDirectionalConfig, "AdamConfig": AdamConfig,
            "DeepSpeechConfig": DeepSpeechConfig},
        "deepspeech_pytorch.checkpoint": {"FileCheckpointHandler": FileCheckpointHandler},
        "pytorch_lightning": {},
        "pytorch_lightning.utilities": {},
        "pytorch_lightning.utilities.parsing": {"AttributeDict": AttributeDict},
    }


# The module each class is pickled under (where omegaconf and deepspeech_pytorch define them).
_HOME = {"DictConfig": "omegaconf.dictconfig", "ListConfig": "omegaconf.listconfig"}


@contextlib.contextmanager
def fake_packages() -> Iterator[types.SimpleNamespace]:
    """The look-alike packages in sys.modules for the block (pickling needs them); gone afterwards."""
    installed: list[str] = []
    found: dict[str, Any] = {}
    try:
        for module_name, attributes in _classes().items():
            if module_name in sys.modules:
                raise RuntimeError(f"{module_name} is really installed; these tests need it absent")
            module = types.ModuleType(module_name)
            for attr, obj in attributes.items():
                if isinstance(obj, type) and attr not in found:
                    obj.__module__ = _HOME.get(attr, module_name)
                    obj.__qualname__ = attr
                    found[attr] = obj
                setattr(module, attr, obj)
            sys.modules[module_name] = module
            installed.append(module_name)
        yield types.SimpleNamespace(**found)
    finally:
        for module_name in installed:
            sys.modules.pop(module_name, None)


def lightning_checkpoint(model: ReferenceDeepSpeech, ns: types.SimpleNamespace, rnn_type: str, hidden: int,
                         layers: int, context: int, sample_rate: int, window: str = "hamming",
                         labels: list[str] | None = None, extra_hparams: dict | None = None,
                         attribute_dict: bool = False) -> dict:
    """The dict Lightning saves for deepspeech.pytorch's DeepSpeech module (inside fake_packages())."""
    root = ns.DictConfig({"seed": 123456}, object_type=ns.DeepSpeechConfig)
    model_values = {"rnn_type": ns.RNNType[rnn_type], "hidden_size": hidden, "hidden_layers": layers}
    if model.bidirectional:
        model_cfg = ns.DictConfig(model_values, object_type=ns.BiDirectionalConfig, key="model", parent=root)
    else:
        model_cfg = ns.DictConfig({**model_values, "lookahead_context": context},
                                  object_type=ns.UniDirectionalConfig, key="model", parent=root)
    spect_cfg = ns.DictConfig({"sample_rate": sample_rate, "window_size": 0.02, "window_stride": 0.01,
                               "window": ns.SpectrogramWindow[window]}, object_type=ns.SpectConfig, key="spect",
                              parent=root)
    optim_cfg = ns.DictConfig({"learning_rate": 1.5e-4, "learning_anneal": 0.99, "weight_decay": 1e-5,
                               "eps": 1e-8, "betas": (0.9, 0.999)}, object_type=ns.AdamConfig, key="optim",
                              parent=root)
    root.__dict__["_content"].update({"model": model_cfg, "optim": optim_cfg})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.99)
    hparams = {"labels": list(labels or LABELS), "model_cfg": model_cfg, "precision": 16, "optim_cfg": optim_cfg,
               "spect_cfg": spect_cfg, **(extra_hparams or {})}
    if attribute_dict:  # as some Lightning versions keep them
        hparams = ns.AttributeDict(hparams)
    return {
        "epoch": 16, "global_step": 54321, "pytorch-lightning_version": "1.1.8",
        "callbacks": {ns.FileCheckpointHandler: {"monitor": "wer", "best_model_score": torch.tensor(10.46),
                                                 "best_model_path": "/models/epoch=16.ckpt"}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [{**scheduler.state_dict(), "interval": "epoch", "frequency": 1}],
        "native_amp_scaling_state": {"scale": 32768.0, "growth_factor": 2.0, "_growth_tracker": 17},
        # The validation metrics' counters, which Lightning 1.1 saved with the weights.
        "state_dict": OrderedDict({**model.state_dict(), "wer.wer": torch.tensor(1234), "wer.n_tokens": torch.tensor(
            9876), "cer.cer": torch.tensor(2345), "cer.n_chars": torch.tensor(45678)}),
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


def save_lightning_checkpoint(path: Path, rnn_type: str = "lstm", hidden: int = 24, layers: int = 3,
                              bidirectional: bool = True, context: int = 4, sample_rate: int = 8000,
                              seed: int = 0, **kwargs: Any) -> ReferenceDeepSpeech:
    """Build a randomly initialised reference network, save it as a V3 Lightning .ckpt, return it."""
    model = randomize(ReferenceDeepSpeech(rnn_type, hidden, layers, bidirectional, context, sample_rate), seed)
    with fake_packages() as ns:
        torch.save(lightning_checkpoint(model, ns, rnn_type, hidden, layers, context, sample_rate, **kwargs), path)
    return model


def reference_log_probs(model: ReferenceDeepSpeech, features, lengths) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        probs, out_lengths = model(torch.as_tensor(features), torch.as_tensor(lengths))
    return probs.log(), out_lengths
