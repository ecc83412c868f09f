"""``ds2 bench``: training throughput and inference speed, as a ladder of setups.

    ds2 bench --quick --out runs/bench            # about 8 minutes on 2 CPU cores (torch-packed-masks left out)
    ds2 bench --rows 'torch-*' --threads 2         # only some rows

Every training row trains one setup for a few steps on the same synthetic utterances
(random 161-bin features, random transcripts of 15 characters per second) and reports
the audio seconds trained per wall second and the hours one epoch of LibriSpeech
train-clean-100 would take. The rows climb from the course's setup (MindSpore, batch 1,
every utterance padded to 15 s) to the fastest one found; from the data-path row on,
each row keeps the best setting of the rows before it (the "ladder"). Inference rows give
the real-time factor of one stream. The results go to ``bench.md``, ``bench.json`` and
``bench.png``; a row that fails reports its error instead of stopping the bench.

How a row is projected to an epoch: a training step costs time in proportion to the
frames the network processes (batch x padded length: convolutions and RNNs run over
every frame), so a row's measured seconds per processed frame times the frames one epoch
processes under that row's batching (fixed padding or length buckets) is the epoch's
time. This keeps ``--quick`` (short utterances) and full runs comparable.

The parts, in the order data flows through them:

    workload.py        the modelled epoch (train-clean-100 durations), the timed pool, synthetic batches
    flops.py           FLOPs of a forward / training pass; the machine's matmul GFLOP/s
    harness.py         Bench (configs, timed steps per backend, data-path cost, epoch projection), RowResult,
                       the ladder, SETUPS
    training_rows.py   the training rows (MindSpore course setup -> torch ladder -> smaller models)
    ddp.py             the torch-ddp2 row and its torchrun worker
    inference_rows.py  the inference rows (RTF of torch eager, int8, ONNX Runtime fp32/int8)
    decoding_rows.py   the decoding rows (greedy, beam, beam + LM: decode RTF and WER on the mini corpus)
    rows.py            TRAINING_ROWS / INFERENCE_ROWS / DECODING_ROWS in order, FULL_RUN_ONLY, select_rows
    report.py          speed-ups, bench.md tables, the targets section
    plot.py            bench.png
    run.py             run_bench: machine info, every row, the three files

A new row is a function ``row_x(b: Bench) -> RowResult`` in a rows module, registered in ``rows.py``.
"""

from .flops import forward_flops, matmul_gflops, training_flops
from .harness import SETUPS, Bench, Ladder, Measurement, NotRun, RowResult, mindspore_available
from .report import OFFICIAL_SIZE_ROWS, TARGETS, add_speedups, markdown_report, targets_report
from .rows import FULL_RUN_ONLY, INFERENCE_ROWS, TRAINING_ROWS, select_rows
from .run import read_wer, run_bench, run_row
from .workload import Workload, frames_of, librispeech100_durations, synthetic_batch

__all__ = [
    "FULL_RUN_ONLY", "INFERENCE_ROWS", "OFFICIAL_SIZE_ROWS", "SETUPS", "TARGETS", "TRAINING_ROWS", "Bench", "Ladder",
    "Measurement", "NotRun", "RowResult", "Workload", "add_speedups", "forward_flops", "frames_of",
    "librispeech100_durations", "markdown_report", "matmul_gflops", "mindspore_available", "read_wer", "run_bench",
    "run_row", "select_rows", "synthetic_batch", "targets_report", "training_flops",
]
