"""ONNX export with dynamic batch and time axes, checked against PyTorch."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from ... import onnx_contract as contract
from ...atomic import atomic_output
from ...data.dataset import Batch
from .model import DeepSpeech2, RNNLayer


def export_onnx(model: DeepSpeech2, path: str | Path, example: Batch, metadata: dict[str, str] | None = None,
                opset: int = 17, int8: bool = False) -> dict:
    """Export ``model`` to ONNX (features (B, bins, T), lengths (B,) -> log_probs, lengths),
    then run onnxruntime on ``example`` and report the max abs difference to PyTorch.
    ``metadata`` is stored in the model (the config, so the file alone can transcribe).
    ``int8``: ONNX Runtime's dynamic quantization of the LSTMs and matrix products (int8 weights,
    activations quantized per call), the fastest engine on one CPU core."""
    import onnx

    model = model.eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    features = torch.from_numpy(example.features)
    lengths = torch.from_numpy(example.feature_lengths)
    quantization = contract.INT8_DYNAMIC if int8 else None
    with atomic_output(path, ".onnx") as tmp:
        # The RNN modules themselves (bidirectional, packed when masked) become one ONNX LSTM/GRU
        # per layer, which ONNX Runtime runs faster than the CPU path's one-direction calls.
        saved, RNNLayer.use_packed = RNNLayer.use_packed, True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter warns about RNN batch sizes
                torch.onnx.export(model, (features, lengths), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=contract.INPUTS, output_names=contract.OUTPUTS,
                                  dynamic_axes=contract.DYNAMIC_AXES)
        finally:
            RNNLayer.use_packed = saved
        if int8:
            fp32 = tmp.with_name(tmp.name.replace(".tmp.onnx", ".fp32.tmp.onnx"))
            os.replace(tmp, fp32)
            try:
                quantize_int8(fp32, tmp)
            finally:
                fp32.unlink(missing_ok=True)
            metadata = {**(metadata or {}), contract.QUANTIZATION_KEY: quantization}
        if metadata:
            proto = onnx.load(str(tmp))
            for key, value in metadata.items():
                proto.metadata_props.add(key=key, value=value)
            onnx.save(proto, str(tmp))
    with torch.inference_mode():
        expected, expected_lengths = model(features, lengths)
    diff = contract.compare(path, example.features, example.feature_lengths, expected.numpy(),
                            expected_lengths.numpy(), "PyTorch")
    return {"path": str(path), "format": "onnx", "max_abs_diff": diff, "batch": len(example),
            "bytes": path.stat().st_size, "quantization": quantization}


def quantize_int8(fp32: Path, out: Path) -> None:
    """ONNX Runtime's int8 dynamic quantization of an exported model's LSTMs and matrix products."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process static-quantization inputs
    try:
        # GRU and plain RNN layers have no quantized ONNX Runtime kernel: they stay fp32.
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "MatMul", "Gemm"])
    finally:
        logging.disable(logging.NOTSET)
