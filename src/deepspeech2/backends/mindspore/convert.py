"""MindSpore <-> PyTorch: parameter names and the weights one network gives the other.

The two networks hold the same tensors in the same layouts: MindSpore 2.x's nn.LSTM
and nn.GRU keep PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n) and PyTorch's
separate input and hidden biases, its Conv2d and Dense weights are (out, in, …) as in
PyTorch, and BatchNorm's gamma/beta/moving_mean/moving_variance are PyTorch's
weight/bias/running_mean/running_var (MindSpore's momentum 0.9 is PyTorch's 0.1). So
converting is renaming; ``tests/test_mindspore_convert.py`` checks that both networks
then give the same log-probabilities. Whole files are converted by ``checkpoints.convert_checkpoint``.

MindSpore 1.x (the course ran 1.6) saved nn.LSTM's weights from parameter tuples as
``w_ih_list.N``, ``w_hh_list.N``, ``b_ih_list.N``, ``b_hh_list.N`` (N = layer *
directions + direction); ``normalize_mindspore_names`` maps them to 2.x's
``weight_ih_l0``, ``weight_ih_l0_reverse``….
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...config import Config

BN_NAMES = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"))
RNN_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LEGACY = re.compile(r"^(?P<prefix>.*\.)(?P<kind>w_ih|w_hh|b_ih|b_hh)_list\.(?P<index>\d+)$")
_LEGACY_KIND = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


def rnn_list_name(rnn_type: str) -> str:
    """Attribute of ``RNN`` holding the recurrent layers: ``lstms`` as in the official code."""
    return "lstms" if rnn_type == "lstm" else f"{rnn_type}s"


def torch_to_mindspore_names(cfg: Config) -> dict[str, str]:
    """PyTorch state_dict key -> MindSpore parameter name, for every weight of ``cfg.model``."""
    m = cfg.model
    names: dict[str, str] = {}
    for i in range(len(m.conv_channels)):
        names[f"conv.convs.{i}.weight"] = f"conv.conv{i + 1}.weight"
        for torch_name, ms_name in BN_NAMES:
            names[f"conv.norms.{i}.{torch_name}"] = f"conv.bn{i + 1}.{ms_name}"
    directions = ("", "_reverse") if m.bidirectional else ("",)
    layers = rnn_list_name(m.rnn_type)
    for i in range(m.rnn_layers):
        for weight in RNN_WEIGHTS:
            for suffix in directions:
                names[f"rnns.{i}.rnn.{weight}_l0{suffix}"] = f"RNN.{layers}.{i}.{weight}_l0{suffix}"
        if m.rnn_batchnorm and i > 0:
            for torch_name, ms_name in BN_NAMES:
                names[f"rnns.{i}.norm.{torch_name}"] = f"RNN.norms.{i - 1}.{ms_name}"
    if not m.bidirectional:
        names["lookahead.conv.weight"] = "lookahead.weight"
    names["fc.weight"] = "fc.module.weight"
    return names


def normalize_mindspore_names(params: dict[str, np.ndarray], cfg: Config) -> dict[str, np.ndarray]:
    """MindSpore 1.x nn.LSTM names (``….w_ih_list.1``) -> 2.x names (``….weight_ih_l0_reverse``)."""
    directions = 2 if cfg.model.bidirectional else 1
    out = {}
    for name, value in params.items():
        match = _LEGACY.match(name)
        if match:
            index = int(match["index"])
            suffix = "_reverse" if index % directions else ""
            name = f"{match['prefix']}{_LEGACY_KIND[match['kind']]}_l{index // directions}{suffix}"
        out[name] = value
    return out


def mindspore_from_torch(state: dict[str, np.ndarray], cfg: Config) -> dict[str, np.ndarray]:
    """A PyTorch state_dict (numpy values) -> MindSpore parameters. Keys the network does
    not have pass through unchanged, so that loading reports them."""
    names = torch_to_mindspore_names(cfg)
    return {names.get(k, k): np.asarray(v) for k, v in state.items() if not k.endswith(".num_batches_tracked")}


def torch_from_mindspore(params: dict[str, np.ndarray], cfg: Config) -> dict[str, np.ndarray]:
    """MindSpore parameters (either naming) -> a PyTorch state_dict (numpy values), with the
    ``num_batches_tracked`` counters PyTorch's BatchNorm keeps (unused at momentum 0.1)."""
    inverse = {v: k for k, v in torch_to_mindspore_names(cfg).items()}
    state = {inverse.get(k, k): np.asarray(v) for k, v in normalize_mindspore_names(params, cfg).items()}
    for key in [k for k in state if k.endswith(".running_mean")]:
        state[key.removesuffix("running_mean") + "num_batches_tracked"] = np.array(0, dtype=np.int64)
    return state


def as_torch_tensors(state: dict[str, np.ndarray]) -> dict:
    """numpy -> torch tensors for ``load_state_dict`` (0-d BatchNorm counters stay 0-d)."""
    import torch

    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def initial_parameters(cfg: Config, num_classes: int) -> dict[str, np.ndarray]:
    """The PyTorch backend's initial weights for ``cfg`` and its seed (PyTorch's default initialisers,
    drawn by PyTorch) under MindSpore's names, so that ``--backend torch`` and ``--backend mindspore``
    start from the same network; torch's generator state is given back."""
    import torch

    from ..torch.model import DeepSpeech2

    saved = torch.get_rng_state()
    try:
        torch.manual_seed(cfg.train.seed)
        twin = DeepSpeech2(cfg.model, cfg.audio.num_bins, num_classes)
    finally:
        torch.set_rng_state(saved)
    return mindspore_from_torch({k: v.numpy() for k, v in twin.state_dict().items()}, cfg)


def read_torch_checkpoint(path: str | Path, cfg: Config) -> tuple[dict[str, np.ndarray], dict]:
    """A PyTorch .pt checkpoint's weights under MindSpore's names, and its training progress."""
    from ..torch.engine import load_checkpoint_file

    ckpt = load_checkpoint_file(path)
    state = {k: v.numpy() for k, v in ckpt["model"].items()}
    return mindspore_from_torch(state, cfg), ckpt.get("progress") or {}
