"""The ONNX contract: what an exported model takes and gives, what it carries, and how it is run.

Both backends' exporters write it (backends/torch/export.py, backends/mindspore/export.py) and
``transcribe``, ``ds2 eval --onnx`` and the bench read it, so it lives here, below all of them:

    inputs   features (batch, bins, time) float32, feature_lengths (batch,) int64
    outputs  log_probs (batch, frames, classes) float32, output_lengths (batch,) int64
    metadata deepspeech2_config (the config as JSON: the file alone can transcribe),
             deepspeech2_quantization ("int8-dynamic" in a quantized export)

Needs numpy only; onnxruntime is imported when a session is opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .safe_load import open_onnx_session

INPUTS = ["features", "feature_lengths"]
OUTPUTS = ["log_probs", "output_lengths"]
DYNAMIC_AXES = {"features": {0: "batch", 2: "time"}, "feature_lengths": {0: "batch"},
                "log_probs": {0: "batch", 1: "frames"}, "output_lengths": {0: "batch"}}
CONFIG_KEY = "deepspeech2_config"
QUANTIZATION_KEY = "deepspeech2_quantization"
INT8_DYNAMIC = "int8-dynamic"  # QUANTIZATION_KEY's value in an export quantized by ``ds2 export --int8``


def config_metadata(config: dict) -> dict[str, str]:
    """The metadata entry that carries a model's config."""
    return {CONFIG_KEY: json.dumps(config)}


def open_session(path: str | Path, threads: int = 0, inter_threads: int = 0):
    """An ONNX Runtime CPU session; ``threads``/``inter_threads``: intra-/inter-op threads (0: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if inter_threads:
        options.inter_op_num_threads = inter_threads
    # safe_load: a missing, truncated or foreign file is an error naming it, not onnxruntime's trace.
    return open_onnx_session(path, options, providers=["CPUExecutionProvider"])


def run(session, features: np.ndarray, feature_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log_probs, output_lengths) of one batch."""
    log_probs, lengths = session.run(None, {INPUTS[0]: features, INPUTS[1]: feature_lengths})
    return log_probs, lengths


def read_metadata(session, path: str | Path) -> tuple[dict, str | None]:
    """(the config as a dict, the quantization or None) stored in an exported model."""
    meta = session.get_modelmeta().custom_metadata_map
    if CONFIG_KEY not in meta:
        raise ValueError(f"{path}: no {CONFIG_KEY} metadata; export it with `ds2 export`")
    return json.loads(meta[CONFIG_KEY]), meta.get(QUANTIZATION_KEY)


def max_abs_diff(got: np.ndarray, expected: np.ndarray, lengths: np.ndarray) -> float:
    """Largest difference over each utterance's valid output frames."""
    return max((float(np.abs(got[i, :n] - expected[i, :n]).max()) for i, n in enumerate(lengths) if n),
               default=0.0)


def compare(path: str | Path, features: np.ndarray, feature_lengths: np.ndarray, expected: np.ndarray,
            expected_lengths: np.ndarray, reference: str) -> float:
    """Run the exported model at ``path`` on a batch and return its largest difference to ``expected``
    (the ``reference`` network's output); RuntimeError when the output lengths differ."""
    got, got_lengths = run(open_session(path), features, feature_lengths)
    if not np.array_equal(got_lengths, expected_lengths):
        raise RuntimeError(f"{path}: ONNX output lengths {got_lengths} differ from {reference} {expected_lengths}")
    return max_abs_diff(got, expected, expected_lengths)
