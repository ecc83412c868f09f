"""The FLOP model: multiply-adds of the network's forward and training passes, and the machine's matmul rate."""

from __future__ import annotations

import time

from ..config import ModelConfig, conv_output_size


def forward_flops(m: ModelConfig, frames: int, num_bins: int = 161, num_classes: int = 29) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass over an utterance of ``frames`` input frames:
    convolutions, RNN gates (input and recurrent products, both directions), lookahead and fc."""
    flops, channels, freq, t = 0.0, 1, num_bins, frames
    for out, (kf, kt), (sf, st) in zip(m.conv_channels, m.conv_kernels, m.conv_strides, strict=True):
        freq, t = conv_output_size(freq, kf, sf), conv_output_size(t, kt, st)
        flops += 2.0 * channels * kf * kt * out * freq * t
        channels = out
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[m.rnn_type]
    directions = 2 if m.bidirectional else 1
    size, h = channels * freq, m.rnn_hidden
    for _ in range(m.rnn_layers):
        flops += directions * t * 2.0 * gates * h * (size + h)
        size = h
    if not m.bidirectional:
        flops += 2.0 * h * (m.lookahead_context + 1) * t
    return flops + 2.0 * h * num_classes * t


def training_flops(m: ModelConfig, batch_frames: list[tuple[int, int]]) -> float:
    """FLOPs of training steps given as (batch size, padded length): backward costs about twice the forward."""
    return sum(3.0 * n * forward_flops(m, t) for n, t in batch_frames)


def matmul_gflops(n: int, dtype_name: str, min_seconds: float = 0.5) -> float:
    """GFLOP/s of an n x n matrix product on torch's default CPU path in ``dtype_name``."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: the library picks its kernel
    reps, start = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - start < min_seconds:
        torch.mm(a, b)
        reps += 1
    return 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e9
