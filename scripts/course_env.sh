# Sourced by the course-style wrappers (run_standalone_train_cpu.sh, run_eval_cpu.sh,
# export.sh): strict mode, the repository root as working folder, and $DS2, the ds2 to
# run (.venv-ms's when it exists, as MindSpore lives there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DS2=${DS2:-$([ -x .venv-ms/bin/ds2 ] && echo .venv-ms/bin/ds2 || echo ds2)}

# usage_unless MIN_ARGS NUM_ARGS USAGE: print the usage and exit 2 with too few arguments.
usage_unless() {
  if [ "$2" -lt "$1" ]; then
    echo "usage: $3" >&2
    exit 2
  fi
}
