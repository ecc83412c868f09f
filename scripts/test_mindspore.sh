#!/usr/bin/env bash
# The MindSpore backend's tests in their own environment: MindSpore 2.10 needs numpy<2,
# the main .venv has numpy 2. Creates .venv-ms when missing (idempotent), installs
# torch 2.13.0 (the CPU wheel), mindspore 2.10.0, numpy<2 and the package with its dev and
# mindspore extras in one resolver run, then runs tests/test_mindspore*.py.
#   bash scripts/test_mindspore.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-ms/bin/python ]; then
  python3 -m venv .venv-ms
fi
# One pip run, so that nothing (onnx's ml_dtypes, say) pulls numpy 2 back in.
.venv-ms/bin/python -m pip install -q --disable-pip-version-check \
  "torch==2.13.0" "mindspore==2.10.0" "numpy<2" -e '.[dev,mindspore]'
.venv-ms/bin/python -c "import mindspore, numpy; print('test_mindspore: mindspore', mindspore.__version__, 'numpy', numpy.__version__)" 2>/dev/null
exec .venv-ms/bin/python -m pytest -q tests/test_mindspore*.py "$@"
