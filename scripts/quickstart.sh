#!/usr/bin/env bash
# The main job, offline: set up, synthesize the mini corpus, train configs/mini.yaml,
# evaluate on test and test-unseen-voice, export ONNX, transcribe one test file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-runs/mini}
shift || true
.venv/bin/ds2 run mini --out "$OUT" "$@"
