"""Inference rows: one stream, batch 1, a 10 s utterance, 1 thread; the real-time factor of each engine."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

from .. import onnx_contract as contract
from ..data.dataset import Batch
from .flops import forward_flops
from .harness import Bench, RowResult, torch_threads
from .workload import frames_of, synthetic_batch


def _inference_setup(b: Bench):
    """The official-size network in eval mode, a short warm-up batch and the 10 s utterance (memoised)."""
    if "inference" not in b.memo:
        from ..backends.torch.model import DeepSpeech2

        cfg = b.config(threads=1)
        alphabet = b.alphabet(cfg)
        model = DeepSpeech2(cfg.model, cfg.audio.num_bins, len(alphabet)).eval()
        warm = synthetic_batch([0], [1.0], alphabet, b.w.seed + 2, num_bins=cfg.audio.num_bins)
        utt = synthetic_batch([0], [b.w.infer_seconds], alphabet, b.w.seed + 3, num_bins=cfg.audio.num_bins)
        b.memo["inference"] = (cfg, model, warm, utt)
    return b.memo["inference"]


def _time_inference(b: Bench, run: Callable[[Batch], object], warm: Batch, utt: Batch) -> float:
    """Compute seconds per audio second (the real-time factor), best of the repetitions."""
    run(warm)
    best = float("inf")
    for _ in range(b.w.infer_reps):
        t0 = time.perf_counter()
        run(utt)
        best = min(best, time.perf_counter() - t0)
    return best / b.w.infer_seconds


def _infer_result(b: Bench, name: str, setup: str, rtf: float, note: str = "", **details) -> RowResult:
    cfg = _inference_setup(b)[0]
    flops = forward_flops(cfg.model, int(frames_of(b.w.infer_seconds)), cfg.audio.num_bins)
    return RowResult(name, setup, kind="infer", batch=1, rtf=rtf, gflops=flops / (rtf * b.w.infer_seconds) / 1e9,
                     note=note, details={"threads": 1, "audio_seconds": b.w.infer_seconds, **details})


def row_infer_torch_eager(b: Bench) -> RowResult:
    import torch

    _, model, warm, utt = _inference_setup(b)

    def run(batch: Batch) -> object:
        with torch.inference_mode():
            return model(torch.from_numpy(batch.features), torch.from_numpy(batch.feature_lengths))

    with torch_threads(1):
        rtf = _time_inference(b, run, warm, utt)
    return _infer_result(b, "infer-torch-eager", "PyTorch eager, fp32", rtf)


def _onnx_export(b: Bench) -> dict:
    """The official-size network exported to ONNX once for both ONNX Runtime rows (memoised)."""
    if "onnx" not in b.memo:
        from ..backends.torch.export import export_onnx

        _, model, warm, _ = _inference_setup(b)
        b.memo["onnx"] = export_onnx(model, b.tmp / "model.onnx", warm)
    return b.memo["onnx"]


def _onnxruntime_rtf(b: Bench, path: str | Path) -> float:
    _, _, warm, utt = _inference_setup(b)
    session = contract.open_session(path, threads=1, inter_threads=1)

    def run(batch: Batch) -> object:
        return contract.run(session, batch.features, batch.feature_lengths)

    return _time_inference(b, run, warm, utt)


def row_infer_onnxruntime(b: Bench) -> RowResult:
    report = _onnx_export(b)
    return _infer_result(b, "infer-onnxruntime", "ONNX Runtime (CPU), fp32", _onnxruntime_rtf(b, report["path"]),
                         note=f"exported with backends/torch/export.py ({report['bytes'] / 1e6:.0f} MB)",
                         onnx_bytes=report["bytes"], max_abs_diff=report["max_abs_diff"])


def row_infer_onnxruntime_int8(b: Bench) -> RowResult:
    from ..backends.torch.export import quantize_int8

    path = b.tmp / "model-int8.onnx"
    quantize_int8(Path(_onnx_export(b)["path"]), path)  # what `ds2 export --int8` does after the fp32 export
    size = path.stat().st_size
    return _infer_result(b, "infer-onnxruntime-int8", "ONNX Runtime int8 dynamic quantization (LSTM, MatMul)",
                         _onnxruntime_rtf(b, path), note=f"`ds2 export --int8` ({size / 1e6:.0f} MB); WER change: "
                         "`ds2 eval --onnx`", onnx_bytes=size)


def row_infer_int8_dynamic(b: Bench) -> RowResult:
    import torch
    from torch import nn

    _, model, warm, utt = _inference_setup(b)
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)

        def run(batch: Batch) -> object:
            with torch.inference_mode():
                return quantized(torch.from_numpy(batch.features), torch.from_numpy(batch.feature_lengths))

        rtf = _time_inference(b, run, warm, utt)
    # The weights are untrained, so what int8 does to accuracy shows only with a trained model:
    # `ds2 eval --int8` on the mini corpus (README).
    return _infer_result(b, "infer-int8-dynamic", "PyTorch int8 dynamic quantization (LSTM, Linear)", rtf,
                         note="weights 4x smaller; `ds2 transcribe`'s default on CPU; WER change: `ds2 eval --int8`")

