#!/usr/bin/env bash
# The course's scripts/export.sh as a thin wrapper over `ds2 export`: a checkpoint (.ckpt,
# or a PyTorch .pt, converted) to MindIR (default) or ONNX with the MindSpore backend; the
# exported file is loaded back and compared with the network on real audio.
#
#   bash scripts/export.sh CKPT [mindir|onnx]
#
# Output: $OUT (default: the checkpoint's name with .mindir/.onnx). The check's audio:
# $MANIFEST (default: the dev manifest saved in the checkpoint's config).
source "$(dirname "$0")/course_env.sh"
usage_unless 1 $# "bash scripts/export.sh CKPT [mindir|onnx]"
format=${2:-mindir}
extra=()
if [ -n "${MANIFEST:-}" ]; then extra+=(--manifest "$MANIFEST"); fi
exec "$DS2" export --checkpoint "$1" --backend mindspore --format "$format" \
  --out "${OUT:-${1%.*}.$format}" "${extra[@]}"
