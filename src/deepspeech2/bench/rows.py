"""Every row of the bench in ladder order, and choosing rows (``--rows``)."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch

from .ddp import row_torch_ddp2
from .decoding_rows import DECODING_ROWS
from .harness import Bench, RowResult
from .inference_rows import (
    row_infer_int8_dynamic,
    row_infer_onnxruntime,
    row_infer_onnxruntime_int8,
    row_infer_torch_eager,
)
from .training_rows import (
    row_mindspore_bucketed,
    row_mindspore_course_b1,
    row_mindspore_official_b1,
    row_mindspore_official_b8,
    row_torch_3x1024,
    row_torch_bf16,
    row_torch_compile,
    row_torch_feature_cache,
    row_torch_gru,
    row_torch_masks,
    row_torch_mini,
    row_torch_official_b20,
    row_torch_packed_masks,
    row_torch_stride3,
    row_torch_threads,
)

TRAINING_ROWS: dict[str, Callable[[Bench], RowResult]] = {
    "mindspore-course-b1": row_mindspore_course_b1,
    "mindspore-official-b1": row_mindspore_official_b1,
    "mindspore-official-b8": row_mindspore_official_b8,
    "mindspore-bucketed": row_mindspore_bucketed,
    "torch-official-b20": row_torch_official_b20,
    "torch-masks": row_torch_masks,
    "torch-packed-masks": row_torch_packed_masks,
    "torch-+feature-cache": row_torch_feature_cache,
    "torch-threads": row_torch_threads,
    "torch-compile": row_torch_compile,
    "torch-bf16": row_torch_bf16,
    "torch-3x1024": row_torch_3x1024,
    "torch-gru": row_torch_gru,
    "torch-stride3": row_torch_stride3,
    "torch-mini": row_torch_mini,
    "torch-ddp2": row_torch_ddp2,
}
INFERENCE_ROWS: dict[str, Callable[[Bench], RowResult]] = {
    "infer-torch-eager": row_infer_torch_eager,
    "infer-onnxruntime": row_infer_onnxruntime,
    "infer-int8-dynamic": row_infer_int8_dynamic,
    "infer-onnxruntime-int8": row_infer_onnxruntime_int8,
}
# Rows that --quick leaves out unless --rows names them: slow, and no later row depends on them.
FULL_RUN_ONLY = {"torch-packed-masks": "one step takes over a minute on 2 cores"}


def select_rows(patterns: str | list[str] | None) -> list[str]:
    """Row names matching comma-separated names or globs (``torch-*``), in ladder order; all for None."""
    names = [*TRAINING_ROWS, *INFERENCE_ROWS, *DECODING_ROWS]
    if not patterns:
        return names
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    unknown = [p for p in patterns if not any(fnmatch(n, p) for n in names)]
    if unknown:
        raise ValueError(f"--rows: no row matches {', '.join(unknown)}; rows are: {', '.join(names)}")
    return [n for n in names if any(fnmatch(n, p) for p in patterns)]

