"""The DeepSpeech2 network in PyTorch.

spectrogram (B, 1, F, T) -> 2-D convolutions (BatchNorm + tanh or hardtanh(0, 20))
-> bidirectional RNN layers whose two directions are summed -> [lookahead convolution
for unidirectional models] -> linear layer without bias -> log-probabilities (B, T', C).

With ``mask_padding`` the frames past each utterance's length are zeroed after every
convolution and the RNNs see only each utterance's own frames (what packed sequences
give), so an utterance's output does not depend on what it is batched with (in eval
mode). On CPU that is computed without packing: PyTorch runs a packed LSTM step by step
in its native kernel, 13x slower than oneDNN's fused LSTM on a padded batch (22 vs 285
GFLOP/s for a BiLSTM-1024 at batch 20; ~10x for the official network: ``ds2 bench`` rows
``torch-masks`` and ``torch-packed-masks``). The
forward direction runs over the padded batch (trailing padding cannot reach the valid
outputs), the backward direction over each utterance reversed within its own length, as
the MindSpore backend does; the result equals the packed one (``tests/test_model.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ...config import ModelConfig

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# The functional kernels behind those modules, called one direction at a time.
RNN_FUNCTIONS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def conv_output_lengths(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def time_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True on valid frames: (B, T)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x (T, B, H) with each utterance's first ``lengths[b]`` frames reversed; padding stays
    where it is. Its own inverse."""
    steps = torch.arange(x.shape[0], device=x.device)[:, None]
    ends = lengths.to(x.device)[None, :]
    index = torch.where(steps < ends, ends - 1 - steps, steps)
    return x.gather(0, index[:, :, None].expand_as(x))


class ConvFrontEnd(nn.Module):
    def __init__(self, cfg: ModelConfig, num_bins: int):
        super().__init__()
        self.mask_padding = cfg.mask_padding
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_channels = 1
        for channels, kernel, stride in zip(cfg.conv_channels, cfg.conv_kernels, cfg.conv_strides, strict=False):
            padding = (kernel[0] // 2, kernel[1] // 2)
            # No bias by default: BatchNorm follows (and the official checkpoint has none);
            # deepspeech.pytorch's convolutions have one (conv_bias).
            self.convs.append(nn.Conv2d(in_channels, channels, tuple(kernel), tuple(stride), padding,
                                        bias=cfg.conv_bias))
            self.norms.append(nn.BatchNorm2d(channels))
            in_channels = channels
        self.output_size = cfg.rnn_input_size(num_bins)
        self.activation = cfg.conv_activation

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv, norm in zip(self.convs, self.norms, strict=False):
            x = norm(conv(x))
            x = torch.tanh(x) if self.activation == "tanh" else F.hardtanh(x, 0.0, 20.0)
            lengths = conv_output_lengths(lengths, conv.kernel_size[1], conv.stride[1], conv.padding[1])
            if self.mask_padding:
                x = x * time_mask(lengths, x.shape[3])[:, None, None, :].to(x.dtype)
        return x, lengths


class RNNLayer(nn.Module):
    """One (bi)directional RNN; the two directions' outputs are summed."""

    def __init__(self, rnn_type: str, input_size: int, hidden: int, bidirectional: bool, batchnorm: bool):
        super().__init__()
        self.norm = nn.BatchNorm1d(input_size) if batchnorm else None
        self.rnn = RNN_TYPES[rnn_type](input_size, hidden, bidirectional=bidirectional)
        self.bidirectional = bidirectional

    # Packed sequences instead of the per-direction path below (for comparisons: ``ds2 bench``).
    use_packed = False

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        # x: (T, B, H), time-major as cuDNN and the official model use.
        if self.norm is not None:
            t, b, h = x.shape
            x = self.norm(x.reshape(t * b, h)).reshape(t, b, h)
        if x.is_cuda or self.use_packed or type(self.rnn) not in RNN_TYPES.values():
            # cuDNN runs packed sequences well and needs the module's flattened weights;
            # quantized modules have no _flat_weights.
            if lengths is not None:
                packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
                x, _ = pad_packed_sequence(self.rnn(packed)[0], total_length=x.shape[0])
            else:
                x = self.rnn(x)[0]
        elif lengths is not None:
            valid = time_mask(lengths, x.shape[0]).t()[:, :, None]
            out = self._direction(x, 0)
            if self.bidirectional:
                out = out + reverse_within_length(self._direction(reverse_within_length(x, lengths), 1), lengths)
            return out.masked_fill(~valid, 0.0)
        else:  # two one-directional calls are ~5 % faster on CPU than one bidirectional
            out = self._direction(x, 0)
            return out + self._direction(x.flip(0), 1).flip(0) if self.bidirectional else out
        if self.bidirectional:
            half = x.shape[-1] // 2
            x = x[..., :half] + x[..., half:]
        return x

    def _direction(self, x: torch.Tensor, direction: int) -> torch.Tensor:
        """One direction of ``self.rnn`` run forward over x (T, B, H), from a zero state."""
        rnn = self.rnn
        per_direction = 4 if rnn.bias else 2  # w_ih, w_hh[, b_ih, b_hh] (one layer, no projection)
        weights = rnn._flat_weights[per_direction * direction: per_direction * (direction + 1)]
        h0 = x.new_zeros(1, x.shape[1], rnn.hidden_size)
        hx = (h0, h0) if rnn.mode == "LSTM" else h0
        return RNN_FUNCTIONS[rnn.mode](x, hx, weights, rnn.bias, 1, 0.0, self.training, False, False)[0]


class Lookahead(nn.Module):
    """Row convolution over ``context`` future frames (DeepSpeech2 paper, section 3.5)."""

    def __init__(self, features: int, context: int):
        super().__init__()
        self.context = context
        self.conv = nn.Conv1d(features, features, context + 1, groups=features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, H)
        x = F.pad(x.permute(1, 2, 0), (0, self.context))
        return self.conv(x).permute(2, 0, 1)


class DeepSpeech2(nn.Module):
    def __init__(self, cfg: ModelConfig, num_bins: int, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.conv = ConvFrontEnd(cfg, num_bins)
        sizes = [self.conv.output_size] + [cfg.rnn_hidden] * (cfg.rnn_layers - 1)
        self.rnns = nn.ModuleList(
            RNNLayer(cfg.rnn_type, size, cfg.rnn_hidden, cfg.bidirectional, cfg.rnn_batchnorm and i > 0)
            for i, size in enumerate(sizes))
        self.lookahead = None if cfg.bidirectional else Lookahead(cfg.rnn_hidden, cfg.lookahead_context)
        # deepspeech.pytorch normalises the last RNN's output before the output layer.
        self.fc_norm = nn.BatchNorm1d(cfg.rnn_hidden) if cfg.fc_batchnorm else None
        self.fc = nn.Linear(cfg.rnn_hidden, num_classes, bias=False)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, F, T) and lengths (B,) -> log-probabilities (B, T', C) and lengths (B,)."""
        x, lengths = self.conv(features.unsqueeze(1), lengths)
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t).permute(2, 0, 1).contiguous()  # (T, B, C*F)
        rnn_lengths = lengths if self.cfg.mask_padding else None
        for rnn in self.rnns:
            x = rnn(x, rnn_lengths)
        if self.lookahead is not None:
            x = F.hardtanh(self.lookahead(x), 0.0, 20.0)
        if self.fc_norm is not None:
            t, b, h = x.shape
            x = self.fc_norm(x.reshape(t * b, h)).reshape(t, b, h)
        logits = self.fc(x).transpose(0, 1)
        return F.log_softmax(logits.float(), dim=-1), lengths


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
