#!/usr/bin/env bash
# The course's scripts/run_standalone_train_cpu.sh as a thin wrapper over `ds2 train`:
# the official MindSpore DeepSpeech2 (configs/mindspore_official.yaml) trained with the
# MindSpore backend on CPU, optionally from a pretrained checkpoint (the official .ckpt,
# one of ours, or a PyTorch .pt, converted on the fly).
#
#   bash scripts/run_standalone_train_cpu.sh [PRETRAINED_CKPT] [KEY=VALUE ...]
#
# Environment: TRAIN_MANIFEST, DEV_MANIFEST (default data/librispeech/{train-clean-100,dev-clean}.jsonl),
# CONFIG (default mindspore_official), OUT (default runs/mindspore_official_cpu), DS2 (the ds2 to run).
# KEY=VALUE overrides go to the config, e.g. train.batch_size=8 train.epochs=5.
source "$(dirname "$0")/course_env.sh"
args=()
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then
  args+=(--pretrained "$1")
  shift
fi
exec "$DS2" train --config "${CONFIG:-mindspore_official}" --backend mindspore --device cpu \
  --out "${OUT:-runs/mindspore_official_cpu}" "${args[@]}" \
  "data.train_manifest=${TRAIN_MANIFEST:-data/librispeech/train-clean-100.jsonl}" \
  "data.dev_manifest=${DEV_MANIFEST:-data/librispeech/dev-clean.jsonl}" "$@"
