#!/usr/bin/env bash
# The MindSpore backend on the mini corpus: the compact LSTM model (configs/mini.yaml;
# model.rnn_type=lstm) trained 4 epochs on 1,000 synthesized utterances with
# --backend mindspore, then evaluated on the mini test set by both backends, with the
# wall time and peak memory of the training.
#
#   bash benchmarks/mindspore_mini.sh [WORKDIR]      (needs .venv-ms: bash scripts/test_mindspore.sh -k nothing)
#
# Measured on the 2-core reference machine: 6 min, 7.1 GB peak, loss 90.3 -> 26.0, dev WER
# 99.9 -> 68.4 %, test WER 66.32 % with either backend.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/mindspore-mini}
ds2=.venv-ms/bin/ds2
[ -x "$ds2" ] || { echo "no .venv-ms: run 'bash scripts/test_mindspore.sh -k nothing' first" >&2; exit 1; }
mkdir -p "$work"
[ -f "$work/corpus/train.jsonl" ] || $ds2 data mini "$work/corpus" --num-train 1000 --num-dev 200 --num-test 200
/usr/bin/time -f "training: %e s wall, %M KB peak memory" \
  $ds2 train --config configs/mini.yaml --backend mindspore --out "$work/run" \
    model.rnn_type=lstm train.epochs=4 train.warmup_steps=30 \
    data.train_manifest="$work/corpus/train.jsonl" data.dev_manifest="$work/corpus/dev.jsonl" \
    data.cache_dir="$work/features"
for backend in mindspore torch; do
  $ds2 eval --checkpoint "$work/run/best.ckpt" --manifest "$work/corpus/test.jsonl" --backend $backend \
    --cache-dir "$work/features" --quiet --out "$work/eval-$backend"
done
