"""The DeepSpeech2 network in MindSpore, cell for cell the official one.

With configs/mindspore_official.yaml the cell tree is that of the official model
(models repo, official/audio/DeepSpeech2/src/deepspeech2.py), so its checkpoints load
as they are::

    conv      conv1 (32,1,41,11) bn1  conv2 (32,32,21,11) bn2  tanh
    RNN       lstms.0 … lstms.4     nn.LSTM, bidirectional, directions summed
    fc        module                nn.Dense(1024, 29) without bias

Time-major RNN input (T, B, F) as in the official code. The project's options
(padding masks, BatchNorm between RNN layers, GRU/RNN cells, hardtanh, unidirectional
RNNs with a lookahead convolution) add cells or change the computation but keep those
names; the PyTorch backend's ``DeepSpeech2`` computes the same function with the same
parameter shapes (see ``convert.py`` for the name mapping).

The initial weights come from the backend (``engine.py``): those of the PyTorch network
for the same seed, so that both backends start a training from the same network.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ...config import ModelConfig
from .convert import rnn_list_name

# Layers with at most this many input values per output (channels x kernel) use a full im2col.
FULL_IM2COL_ROWS = 1024
RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Conv2d(nn.Conv2d):
    """nn.Conv2d without bias, padded half a kernel on each side: the same parameter and
    the same function. On CPU it is computed with one matmul: MindSpore 2.10's CPU
    convolution kernel takes seconds for the 41x11 and 21x11 kernels (25-50x PyTorch's
    time). The input is unfolded over frequency only, every time tap of the kernel is
    applied at once, y = W (O*kw, C*kh) @ patches (C*kh, F'*T), and the taps' outputs are
    added with their time shifts: as fast as PyTorch, and ``kernel width`` times less
    memory than a full im2col. A layer with few inputs per output (the first, on one
    channel) takes the full im2col instead, which is small there.

    (Padding the input with ``ops.pad`` instead of ``unfold``'s own padding makes
    MindSpore 2.10's graph keep the weight it was compiled with in the input gradient,
    which silently breaks training once the optimizer has changed the weight;
    ``tests/test_mindspore_convert.py`` checks several optimizer steps against PyTorch.)"""

    # MindSpore's own convolution kernel on CPU too, as the course's code runs it: only for the
    # baseline row of ``ds2 bench`` (read when a layer is built).
    native_on_cpu = False

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int]):
        padding = (kernel[0] // 2, kernel[0] // 2, kernel[1] // 2, kernel[1] // 2)  # top, bottom, left, right
        super().__init__(in_channels, out_channels, kernel, stride, pad_mode="pad", padding=padding, has_bias=False)
        self.taps = ms.get_context("device_target") == "CPU" and not Conv2d.native_on_cpu
        self.geometry = (kernel[0], kernel[1], stride[0], stride[1], kernel[0] // 2, kernel[1] // 2)

    def construct(self, x: Tensor) -> Tensor:
        if not self.taps:
            return self.conv2d(x, self.weight)
        kh, kw, sh, sw, ph, pw = self.geometry
        b, c, f, t = x.shape
        out_channels = self.weight.shape[0]
        f_out = (f + 2 * ph - kh) // sh + 1
        t_padded = t + 2 * pw
        t_out = (t_padded - kw) // sw + 1
        if c * kh * kw <= FULL_IM2COL_ROWS:
            # The first layer (one input channel): a full im2col is small, and it avoids the
            # strided time slices below, whose gradients hold a full-size tensor per tap
            # (~5 GB per input shape for the 41x11 kernel at time stride 3).
            patches = ops.unfold(x, (kh, kw), 1, (ph, pw), (sh, sw))
            weight = self.weight.reshape(out_channels, c * kh * kw)
            y = ops.bmm(ops.broadcast_to(weight, (b, *weight.shape)), patches)
            return y.reshape(b, out_channels, f_out, t_out)
        # (B, C*kh, F'*T_padded): every frequency window at every (padded) time step.
        patches = ops.unfold(x, (kh, 1), 1, (ph, pw), (sh, 1))
        weight = self.weight.transpose(0, 3, 1, 2).reshape(out_channels * kw, c * kh)  # rows: (O, tap)
        # bmm with the weight broadcast explicitly: ops.matmul's own broadcasting has a
        # gradient graph that holds ~5 GB per input shape on CPU (and is 3-5x slower).
        y = ops.bmm(ops.broadcast_to(weight, (b, *weight.shape)), patches)
        y = y.reshape(b, out_channels, kw, f_out, t_padded)
        out = None
        for j in range(kw):
            tap = y[:, :, j, :, j:j + sw * (t_out - 1) + 1:sw]
            out = tap if out is None else out + tap
        return out


class HardTanh(nn.Cell):
    """hardtanh(0, 20), the clipped ReLU of DeepSpeech2."""

    def construct(self, x: Tensor) -> Tensor:
        return ops.clamp(x, 0.0, 20.0)


class ConvFrontEnd(nn.Cell):
    """``conv``: conv1, bn1, conv2, bn2… with tanh (the official ``MaskConv``) or hardtanh."""

    def __init__(self, cfg: ModelConfig, num_bins: int):
        super().__init__()
        self.mask_padding = cfg.mask_padding
        layers = []
        self.time_kernels: list[tuple[int, int]] = []
        in_channels = 1
        for i, (channels, kernel, stride) in enumerate(
                zip(cfg.conv_channels, cfg.conv_kernels, cfg.conv_strides, strict=False), 1):
            conv = Conv2d(in_channels, channels, tuple(kernel), tuple(stride))
            norm = nn.BatchNorm2d(channels)
            setattr(self, f"conv{i}", conv)
            setattr(self, f"bn{i}", norm)
            layers += [conv, norm]
            self.time_kernels.append((kernel[1], stride[1]))
            in_channels = channels
        # The official cell is named ``tanh``; it holds no parameters, so the name is free for hardtanh too.
        self.tanh = nn.Tanh() if cfg.conv_activation == "tanh" else HardTanh()
        # A second view of the same cells (as the official ``module_list``): parameters keep their first names.
        self.layers = nn.CellList(layers)
        self.num_layers = len(self.time_kernels)
        self.output_size = cfg.rnn_input_size(num_bins)

    def construct(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        for i in range(self.num_layers):
            x = self.tanh(self.layers[2 * i + 1](self.layers[2 * i](x)))
            kernel, stride = self.time_kernels[i]
            lengths = (lengths + 2 * (kernel // 2) - kernel) // stride + 1
            if self.mask_padding:
                x = x * time_mask(lengths, x.shape[3]).astype(x.dtype).reshape(x.shape[0], 1, 1, x.shape[3])
        return x, lengths


def time_mask(lengths: Tensor, max_len: int) -> Tensor:
    """True on valid frames: (B, T)."""
    return ops.arange(max_len, dtype=lengths.dtype).reshape(1, -1) < lengths.reshape(-1, 1)


class RNNStack(nn.Cell):
    """``RNN``: the official ``BatchRNN``: one (bi)directional layer per cell of ``lstms``,
    the directions' outputs summed; optional BatchNorm before layers 2…n (``norms``)."""

    def __init__(self, cfg: ModelConfig, input_size: int):
        super().__init__()
        cell = RNN_CELLS[cfg.rnn_type]
        sizes = [input_size] + [cfg.rnn_hidden] * (cfg.rnn_layers - 1)
        layers = nn.CellList([cell(size, cfg.rnn_hidden, has_bias=True, bidirectional=cfg.bidirectional)
                              for size in sizes])
        self.list_name = rnn_list_name(cfg.rnn_type)
        setattr(self, self.list_name, layers)
        self.rnns = layers
        self.batchnorm = cfg.rnn_batchnorm and cfg.rnn_layers > 1
        if self.batchnorm:
            self.norms = nn.CellList([nn.BatchNorm1d(cfg.rnn_hidden) for _ in range(cfg.rnn_layers - 1)])
        self.num_layers = cfg.rnn_layers
        self.hidden = cfg.rnn_hidden
        self.bidirectional = cfg.bidirectional
        self.mask_padding = cfg.mask_padding
        self.is_lstm = cfg.rnn_type == "lstm"
        self.reverse_sequence = ops.ReverseSequence(seq_dim=0, batch_dim=1)

    def _run(self, rnn: nn.Cell, x: Tensor, lengths: Tensor, direction: int) -> Tensor:
        """One direction of ``rnn`` over the valid frames only (what PyTorch's packed sequences do).

        Frames past an utterance's end come after its valid frames, so a forward pass over
        the padded batch leaves the valid outputs untouched; the backward direction runs
        forward over each utterance reversed within its own length, then is reversed back.
        The cell's own parameters and kernel are used, so the names stay those of nn.LSTM."""
        if direction == 1:
            x = self.reverse_sequence(x, lengths)
        zeros = ops.zeros((x.shape[1], self.hidden), x.dtype)
        state = (zeros, zeros) if self.is_lstm else zeros
        out, _ = rnn.rnn(x, state, None, rnn.w_ih_list[direction], rnn.w_hh_list[direction],
                         rnn.b_ih_list[direction], rnn.b_hh_list[direction])
        if direction == 1:
            out = self.reverse_sequence(out, lengths)
        return out

    def construct(self, x: Tensor, lengths: Tensor) -> Tensor:
        t, b = x.shape[0], x.shape[1]
        mask = None
        if self.mask_padding:
            mask = time_mask(lengths, t).transpose(1, 0).reshape(t, b, 1).astype(x.dtype)
        for i in range(self.num_layers):
            if self.batchnorm and i > 0:
                x = self.norms[i - 1](x.reshape(t * b, -1)).reshape(t, b, -1)
            rnn = self.rnns[i]
            if self.mask_padding:
                lengths32 = lengths.astype(ms.int32)
                out = self._run(rnn, x, lengths32, 0)
                if self.bidirectional:
                    out = out + self._run(rnn, x, lengths32, 1)
                x = out * mask
            else:
                x, _ = rnn(x)
                if self.bidirectional:
                    # The official code: reshape to (T, B, 2, H) and sum over the directions.
                    x = x.reshape(t, b, 2, self.hidden).sum(axis=2)
        return x


class Lookahead(nn.Cell):
    """Row convolution over ``context`` future frames, for unidirectional models:
    out[t] = sum_k weight[:, 0, k] * x[t + k] (PyTorch: a depthwise Conv1d)."""

    def __init__(self, features: int, context: int):
        super().__init__()
        self.context = context
        bound = 1.0 / np.sqrt(context + 1)
        init = np.random.uniform(-bound, bound, (features, 1, context + 1)).astype(np.float32)
        self.weight = Parameter(Tensor(init), name="weight")

    def construct(self, x: Tensor) -> Tensor:  # (T, B, H)
        t = x.shape[0]
        padded = ops.concat((x, ops.zeros((self.context, x.shape[1], x.shape[2]), x.dtype)), axis=0)
        out = padded[0:t] * self.weight[:, 0, 0]
        for k in range(1, self.context + 1):
            out = out + padded[k:k + t] * self.weight[:, 0, k]
        return out


class SequenceWise(nn.Cell):
    """``fc``: a Dense over (T*B, H), as the official ``SequenceWise``."""

    def __init__(self, module: nn.Cell):
        super().__init__()
        self.module = module

    def construct(self, x: Tensor) -> Tensor:
        t, b = x.shape[0], x.shape[1]
        return self.module(x.reshape(t * b, -1)).reshape(t, b, -1)


class DeepSpeech2(nn.Cell):
    """features (B, F, T) and lengths (B,) -> log-probabilities (B, T', C) and lengths (B,)."""

    def __init__(self, cfg: ModelConfig, num_bins: int, num_classes: int):
        super().__init__()
        if cfg.conv_bias or cfg.fc_batchnorm:
            raise ValueError("model.conv_bias and model.fc_batchnorm (deepspeech.pytorch's network) are for the "
                             "torch backend; the MindSpore network has neither")
        self.cfg = cfg
        self.conv = ConvFrontEnd(cfg, num_bins)
        self.RNN = RNNStack(cfg, self.conv.output_size)
        self.lookahead = None if cfg.bidirectional else Lookahead(cfg.rnn_hidden, cfg.lookahead_context)
        self.fc = SequenceWise(nn.Dense(cfg.rnn_hidden, num_classes, has_bias=False))
        self.log_softmax = nn.LogSoftmax(axis=-1)

    def construct(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = self.conv(features.expand_dims(1), lengths)
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t).transpose(2, 0, 1)  # (T, B, C*F): time-major
        x = self.RNN(x, lengths)
        if self.lookahead is not None:
            x = ops.clamp(self.lookahead(x), 0.0, 20.0)
        logits = self.fc(x).transpose(1, 0, 2)
        return self.log_softmax(logits), lengths


def count_parameters(net: nn.Cell) -> int:
    """Weights, frozen or not, without BatchNorm statistics: what PyTorch's ``parameters()`` counts."""
    return sum(int(np.prod(p.shape)) for p in net.get_parameters()
               if not p.name.rsplit(".", 1)[-1].startswith("moving_"))
