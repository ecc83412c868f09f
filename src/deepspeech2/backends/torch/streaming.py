"""Chunked (streaming) inference of a unidirectional DeepSpeech2, and its ONNX export.

A unidirectional model's output at frame t depends on a bounded window of input: each
time convolution sees ``kernel // 2`` frames either side, the forward RNNs only the past
(their state), the lookahead convolution ``lookahead_context`` frames ahead. So the
network can run on audio as it arrives if every stage keeps what the next chunk needs:

    conv i     the input frames its next output still reads (``conv{i}_cache``); at the
               start that is the ``kernel // 2`` zero frames the offline model pads with
    RNN j      its state (``rnn{j}_h``, and ``rnn{j}_c`` for an LSTM)
    lookahead  the last ``lookahead_context`` RNN outputs (``lookahead_cache``), empty at first

At the end of the stream the right-hand padding the offline model applies is fed as zeros
(``conv{i}_tail`` for i >= 1, zero feature frames for conv 0, ``lookahead_tail``), so the
streamed log-probabilities equal the offline ones frame for frame (tests/test_serve_streaming.py).

:class:`StreamingStep` is that step as a module; it runs in PyTorch for a checkpoint and is
exported to ONNX (state in, state out) by :func:`export_streaming_onnx` for ONNX Runtime.
The host side (chunking, state bookkeeping, decoding) is ``deepspeech2.serve.streaming``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import DeepSpeech2


def state_names(num_convs: int, rnn_type: str, rnn_layers: int) -> list[str]:
    """The state tensors a step takes after ``features``, in order (outputs: the same + ``_out``,
    except the tails, which are inputs only)."""
    names = [f"conv{i}_cache" for i in range(num_convs)] + [f"conv{i}_tail" for i in range(1, num_convs)]
    for j in range(rnn_layers):
        names += [f"rnn{j}_h", f"rnn{j}_c"] if rnn_type == "lstm" else [f"rnn{j}_h"]
    return names + ["lookahead_cache", "lookahead_tail"]


class StreamingStep(nn.Module):
    """One chunk of a unidirectional :class:`DeepSpeech2` in eval mode.

    ``forward(features (1, bins, N), *state)`` -> ``(log_probs (1, n, classes), *new_state)``,
    with the state as :func:`state_names` lists it (tails are inputs only).
    """

    def __init__(self, model: DeepSpeech2):
        super().__init__()
        if model.lookahead is None:
            raise ValueError("streaming needs a unidirectional model (model.bidirectional: false)")
        self.model = model.eval()
        cfg = model.cfg
        self.names = state_names(len(cfg.conv_channels), cfg.rnn_type, cfg.rnn_layers)
        self.num_convs = len(cfg.conv_channels)
        self.lstm = cfg.rnn_type == "lstm"
        self.context = cfg.lookahead_context
        self.eval()  # a new module is in training mode, and exporting restores that mode to the model too

    def forward(self, features: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        n = self.num_convs
        caches, tails, rest = state[:n], state[n: 2 * n - 1], list(state[2 * n - 1:])
        new_state: list[torch.Tensor] = []
        x = features.unsqueeze(1)  # (1, 1, bins, N)
        for i, (conv, norm) in enumerate(zip(model.conv.convs, model.conv.norms, strict=True)):
            window = torch.cat([caches[i], x] + ([tails[i - 1]] if i else []), dim=3)
            y = F.conv2d(window, conv.weight, None, conv.stride, (conv.padding[0], 0))
            y = norm(y)
            x = torch.tanh(y) if model.conv.activation == "tanh" else F.hardtanh(y, 0.0, 20.0)
            # What the next output reads: everything from its first input frame on.
            new_state.append(window[:, :, :, x.shape[3] * conv.stride[1]:])
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t).permute(2, 0, 1)  # (T, 1, C*F)
        for layer in model.rnns:
            if layer.norm is not None:
                x = layer.norm(x.reshape(t * b, -1)).reshape(t, b, -1)
            if self.lstm:
                h, c_ = rest.pop(0), rest.pop(0)
                x, (h, c_) = layer.rnn(x, (h, c_))
                new_state += [h, c_]
            else:
                x, h = layer.rnn(x, rest.pop(0))
                new_state.append(h)
        cache, tail = rest
        window = torch.cat([cache, x, tail], dim=0)  # (L, 1, H): L - context outputs
        y = model.lookahead.conv(window.permute(1, 2, 0)).permute(2, 0, 1)
        new_state.append(window[window.shape[0] - self.context:] if self.context else window[:0])
        logits = model.fc(F.hardtanh(y, 0.0, 20.0)).transpose(0, 1)
        return (F.log_softmax(logits.float(), dim=-1), *new_state)


def export_streaming_onnx(model: DeepSpeech2, path: str | Path, example: dict[str, np.ndarray],
                          metadata: dict[str, str], opset: int = 17) -> Path:
    """Export :class:`StreamingStep` (features and state in; log-probabilities and state out),
    every time axis dynamic, written atomically with ``metadata``. ``example``: ``features`` and
    a mid-stream state with no empty axis (an empty axis would be traced as a constant)."""
    import onnx

    step = StreamingStep(model.eval().cpu())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    inputs = tuple(torch.from_numpy(example[name]) for name in ["features", *step.names])
    outputs = ["log_probs"] + [f"{name}_out" for name in step.names if "_tail" not in name]
    time_axes = {"features": {2: "time"}, "log_probs": {1: "frames"}}
    for name in step.names:
        if name.startswith("conv"):
            time_axes[name] = {3: f"{name}_time"}
        elif name.startswith("lookahead"):
            time_axes[name] = {0: f"{name}_time"}
    for name in step.names:
        if "_cache" in name:
            time_axes[f"{name}_out"] = {k: f"{v}_out" for k, v in time_axes[name].items()}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about RNN batch sizes and shape tracing
        torch.onnx.export(step, inputs, str(tmp), dynamo=False, opset_version=opset,
                          input_names=["features", *step.names], output_names=outputs, dynamic_axes=time_axes)
    proto = onnx.load(str(tmp))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path
