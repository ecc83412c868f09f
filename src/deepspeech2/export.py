"""Export: a checkpoint of either backend -> ONNX (or MindIR), checked against the network on real features.

    ds2 export --checkpoint runs/mini/train/best.pt --out model.onnx [--int8]

The backends write the files (backends/torch/export.py, backends/mindspore/export.py) under the
ONNX contract (onnx_contract.py); this stage picks the checkpoint's backend and the utterances the
exported model is checked on.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoints import load_backend
from .data.dataset import SkipReport, SpeechDataset, load_dataset
from .data.features import FeatureCache, default_cache_dir


def example_indices(dataset: SpeechDataset, count: int) -> list[int]:
    """``count`` utterances spread over the lengths (shortest to longest), so that the check covers
    padding and masking too."""
    order = sorted(range(len(dataset)), key=lambda i: dataset.frames[i])
    return sorted({order[round(k * (len(order) - 1) / max(1, count - 1))] for k in range(count)})


def export_checkpoint(checkpoint: str | Path, out: str | Path, fmt: str, manifest: str | Path | None = None,
                      cache_dir: str | None = None, num_examples: int = 4, int8: bool = False) -> dict:
    """Export, checking the exported model on real features from ``manifest`` (or the
    checkpoint's dev manifest). ``int8``: ONNX with int8 dynamic quantization."""
    cfg, backend = load_backend(checkpoint, cache_dir)
    manifest = manifest or cfg.data.dev_manifest
    if not manifest or not Path(manifest).exists():
        raise SystemExit("export needs real audio to check the exported model: give --manifest M")
    dataset = load_dataset(manifest, cfg, FeatureCache(default_cache_dir(cfg), cfg.audio.feature_spec()),
                           SkipReport())
    return backend.export(Path(out), fmt, dataset.batch(example_indices(dataset, num_examples)), int8=int8)
