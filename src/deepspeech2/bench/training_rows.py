"""Training rows, from the course's setup (MindSpore, batch 1, fixed padding) to the fastest; from the data-path
row on, each row keeps the best setting of the rows before it (``Bench.ladder``)."""

from __future__ import annotations

from .harness import (
    ADOPT_MARGIN,
    MINDSPORE_MISSING,
    SETUPS,
    Bench,
    NotRun,
    RowResult,
    mindspore_available,
    mindspore_static_length,
)
from .workload import OFFICIAL_FRAMES


def _mindspore_fixed(b: Bench, name: str, batch_size: int, native_conv: bool = False) -> RowResult:
    if not mindspore_available():
        raise NotRun(MINDSPORE_MISSING)
    cfg = b.config(batch_size=batch_size, backend="mindspore")
    m = b.measure_mindspore(cfg, b.fixed_batches(cfg, batch_size), native_conv=native_conv)
    frames = b.w.epoch_frames_fixed(OFFICIAL_FRAMES, mindspore_static_length)
    static = mindspore_static_length(OFFICIAL_FRAMES)
    note = "every utterance padded to 1,501 frames" + (f" (the backend's static shape: {static})"
                                                       if static != OFFICIAL_FRAMES else "")
    note += ("; MindSpore's CPU convolution kernel, as the course's code" if native_conv else
             "; this toolkit's convolution (unfold + matmul)")
    return b.train_result(name, SETUPS[name], cfg, m, frames, note=note)


def row_mindspore_course_b1(b: Bench) -> RowResult:
    """The course's setup: the official MindSpore network with MindSpore's own CPU convolution, batch 1,
    every utterance padded to 15 s."""
    return _mindspore_fixed(b, "mindspore-course-b1", 1, native_conv=True)


def row_mindspore_official_b1(b: Bench) -> RowResult:
    """The same recipe on this toolkit's MindSpore backend (its convolution is an unfold and a matmul)."""
    return _mindspore_fixed(b, "mindspore-official-b1", 1)


def row_mindspore_official_b8(b: Bench) -> RowResult:
    """Larger batches: the same, batch 8."""
    return _mindspore_fixed(b, "mindspore-official-b8", 8)


def row_mindspore_bucketed(b: Bench) -> RowResult:
    """Length buckets instead of fixed padding: a batch is padded to its longest utterance (rounded up
    to the backend's static bucket)."""
    if not mindspore_available():
        raise NotRun(MINDSPORE_MISSING)
    cfg = b.config(batch_size=8, backend="mindspore")
    m = b.measure_mindspore(cfg, b.bucketed_batches(cfg, 8))
    frames = b.w.epoch_frames_bucketed(8, mindspore_static_length)
    return b.train_result("mindspore-bucketed", SETUPS["mindspore-bucketed"], cfg, m,
                          frames, note="static shapes: half-octave buckets")


def row_torch_official_b20(b: Bench) -> RowResult:
    """The PyTorch backend at the official size (5 x BiLSTM-1024), batch 20, length buckets."""
    cfg = b.config(threads=b.threads)
    return b.torch_row("torch-official-b20", "PyTorch, official config, batch 20, length buckets", cfg,
                       note="training step only (no data path)")


def row_torch_masks(b: Bench) -> RowResult:
    """Padding masks on (every utterance's output independent of its batch), the default of the
    LibriSpeech recipes: on CPU the RNNs run one direction at a time on oneDNN's LSTM."""
    cfg = b.config(overrides=["model.mask_padding=true"], threads=b.threads)
    return b.torch_row("torch-masks", "+ padding masks (exact per utterance), per-direction oneDNN RNNs", cfg,
                       note="configs/librispeech100.yaml's setting")


def row_torch_packed_masks(b: Bench) -> RowResult:
    """The same masks computed with PyTorch's packed sequences (deepspeech.pytorch's way): on CPU a
    packed LSTM runs step by step in the native kernel."""
    cfg = b.config(overrides=["model.mask_padding=true"], threads=b.threads)
    return b.torch_row("torch-packed-masks", SETUPS["torch-packed-masks"], cfg,
                       packed=True, note="not used: the row above computes the same outputs")


def row_torch_feature_cache(b: Bench) -> RowResult:
    """The data path included: features computed from audio every step vs loaded from the fp16 cache."""
    cfg = b.config(threads=b.threads)
    costs = b.data_path()
    compute, cached = costs["compute_s_per_audio_s"], costs["cached_s_per_audio_s"]
    uncached = b.torch_speed(cfg, data_cost=compute)
    b.ladder.data_path = True
    return b.torch_row(
        "torch-+feature-cache", "+ data path: fp16 features from the cache", cfg, data_cost=cached,
        note=(f"features from audio each step: {uncached:.2f} audio s/s ({1e3 * compute:.1f} ms per audio s); "
              f"cached: {1e3 * cached:.2f} ms per audio s"),
        uncached_audio_per_s=uncached, **costs)


def row_torch_threads(b: Bench) -> RowResult:
    """Thread settings: torch.set_num_threads(1) vs all cores; the faster one stays."""
    results = {n: b.torch_row("torch-threads", f"+ threads: {n}", b.config(threads=n),
                              data_cost=b.ladder_data_cost()) for n in dict.fromkeys([1, b.threads])}
    best = max(results, key=lambda n: results[n].audio_per_s or 0.0)
    b.ladder.threads = best
    row = results[best]
    row.setup = f"+ threads: best of 1 and {b.threads} ({best})" if len(results) > 1 else f"+ threads: {best}"
    row.note = "; ".join(f"{n} thread{'s' * (n > 1)}: {r.audio_per_s:.2f} audio s/s" for n, r in results.items())
    return row


def row_torch_compile(b: Bench) -> RowResult:
    """torch.compile of the model (dynamic shapes); the ladder keeps eager when compiling fails or is slower."""
    cfg = b.ladder_config()
    eager = b.torch_speed(cfg, data_cost=b.ladder_data_cost())
    row = b.torch_row("torch-compile", "+ torch.compile (inductor, dynamic shapes)", cfg, compile_model=True,
                      data_cost=b.ladder_data_cost())
    faster = (row.audio_per_s or 0.0) > ADOPT_MARGIN * eager
    b.ladder.compile = faster
    row.note = (f"eager {eager:.2f} audio s/s" + ("" if faster else ": not faster, the ladder keeps eager")
                + f"; compile + first steps {row.details['warmup_seconds']:.0f} s, and again for every new "
                "utterance length (the conv front end recompiles per length)")
    return row


def row_torch_bf16(b: Bench) -> RowResult:
    """bf16 autocast on CPU; the ladder keeps fp32 when it is slower."""
    base = b.ladder_config()
    bf16 = b.config(threads=b.ladder.threads, precision="bf16")
    before = b.torch_speed(base, b.ladder.compile, data_cost=b.ladder_data_cost())
    row = b.torch_row("torch-bf16", "+ bf16 autocast", bf16, b.ladder.compile, data_cost=b.ladder_data_cost())
    faster = (row.audio_per_s or 0.0) > ADOPT_MARGIN * before
    if faster:
        b.ladder.precision = "bf16"
    row.note = f"fp32 {before:.2f} audio s/s" + ("" if faster else ": not faster, the ladder keeps fp32")
    return row


def _smaller_model(b: Bench, name: str, setup: str, base: str, overrides: list[str]) -> RowResult:
    cfg = b.ladder_config(base, overrides)
    row = b.torch_row(name, setup, cfg, b.ladder.compile, data_cost=b.ladder_data_cost())
    m = cfg.model
    row.note = (f"{m.rnn_layers} x {'Bi' if m.bidirectional else ''}{m.rnn_type.upper()}-{m.rnn_hidden}, "
                f"time stride {m.time_stride}")
    return row


def row_torch_3x1024(b: Bench) -> RowResult:
    """3 BiLSTM layers instead of 5."""
    return _smaller_model(b, "torch-3x1024", "smaller: 3 x BiLSTM-1024", "mindspore_official",
                          ["model.rnn_layers=3"])


def row_torch_gru(b: Bench) -> RowResult:
    """GRU (3 gates) instead of LSTM (4)."""
    return _smaller_model(b, "torch-gru", "smaller: 5 x BiGRU-1024", "mindspore_official", ["model.rnn_type=gru"])


def row_torch_stride3(b: Bench) -> RowResult:
    """Time stride 3 in the first convolution: a third fewer RNN steps than stride 2."""
    return _smaller_model(b, "torch-stride3", "strided: conv time stride 3", "mindspore_official",
                          ["model.conv_strides=[[2,3],[2,1]]"])


def row_torch_mini(b: Bench) -> RowResult:
    """configs/mini.yaml: 3 x BiLSTM-256, stride 3."""
    return _smaller_model(b, "torch-mini", "smaller: configs/mini.yaml", "mini", [])

