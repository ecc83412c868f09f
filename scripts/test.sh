#!/usr/bin/env bash
# Sets up (idempotent), then runs the linter, the test suite, and the MindSpore backend's
# tests in their own environment (MindSpore 2.10 needs numpy<2; skip them with
# DS2_SKIP_MINDSPORE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
if [ "${DS2_SKIP_MINDSPORE:-0}" != 1 ]; then
  bash scripts/test_mindspore.sh
fi
