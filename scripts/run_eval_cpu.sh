#!/usr/bin/env bash
# The course's scripts/run_eval_cpu.sh as a thin wrapper over `ds2 eval`: greedy WER/CER
# of a checkpoint (.ckpt: ours or the official one; .pt: converted) with the MindSpore
# backend on CPU, per-utterance Ref/Hyp lines as the course's eval.py prints them.
#
#   bash scripts/run_eval_cpu.sh CKPT [MANIFEST]
#
# MANIFEST defaults to $TEST_MANIFEST or data/librispeech/test-clean.jsonl; results go to
# $OUT (default: <checkpoint folder>/eval-<manifest name>).
source "$(dirname "$0")/course_env.sh"
usage_unless 1 $# "bash scripts/run_eval_cpu.sh CKPT [MANIFEST]"
manifest=${2:-${TEST_MANIFEST:-data/librispeech/test-clean.jsonl}}
name=$(basename "${manifest%.*}")
exec "$DS2" eval --checkpoint "$1" --manifest "$manifest" --backend mindspore \
  --out "${OUT:-$(dirname "$1")/eval-$name}"
