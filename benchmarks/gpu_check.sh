#!/usr/bin/env bash
# The prepared GPU check: one script, under ten minutes on one H100 / H200.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]                 # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu-dry-run [OUT_DIR]   # every step, tiny, on a CPU
#
# Writes OUT_DIR/gpu_check.json (default: $OUT when set, else benchmarks/results/gpu_check),
# named by the device; benchmarks/gpu_check.py says what each step measures.
#
# Packages the GPU machine lacks (Ray, MLflow, Optuna, Dash, ...; its image has torch and
# timm) travel as wheels: benchmarks/gpu_wheels.sh downloads them here into .whl/, split into
# groups that each fit one call's 64 MiB (Ray's wheel alone is 79 MB). On the device, call
#   bash benchmarks/gpu_check.sh --stage-wheels      once per group but the last (carry .whl),
# then the check itself with the last group: every staged group is installed together.
# The machine stays warm for 30 s after a call, so the calls must follow at once. Without
# wheels, the steps that need none (device, inference, MFU) still run; sweep and ddp fail
# with the import that is missing, in the JSON.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=""
STAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY="--cpu-dry-run"; shift ;;
    --stage-wheels) STAGE=1; shift ;;
    *) break ;;
  esac
done
OUT_DIR="${1:-${OUT:-benchmarks/results/gpu_check}}"
STAGED=/tmp/mvit_lab_wheels  # wheel groups carried by earlier calls to this machine

stage() {  # every carried wheel (or part of one) under .whl/, whatever its group folder
  mkdir -p "$STAGED"
  [ -d .whl ] && find .whl -type f \( -name '*.whl' -o -name '*.whl.part-*' \) \
    -exec cp {} "$STAGED/" \;
  return 0
}
if [ -n "$STAGE" ]; then
  stage && echo "staged wheels: $(ls "$STAGED" | wc -l) files in $STAGED"
  exit 0
fi

PY="${PYTHON:-python3}"
if [ -d .whl ] || [ -d "$STAGED" ]; then
  stage
  # Ray's wheel travels in parts (split -b): join them back first
  for first in "$STAGED"/*.whl.part-aa; do
    [ -e "$first" ] || continue
    whl="${first%.part-aa}"
    cat "$whl".part-* > "$whl" && rm -f "$whl".part-*
  done
  if ls "$STAGED"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$STAGED"/*.whl || echo "gpu_check: wheel install failed" >&2
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="/tmp/site/bin:$PATH"  # ray's command-line entry points
  fi
fi

mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mvit_lab first
# the check's own budget: 9 minutes at most on the GPU, whatever a step does (a loaded CPU
# dry run may need more: GPU_CHECK_TIMEOUT and GPU_CHECK_STEP_TIMEOUT, in seconds)
timeout "${GPU_CHECK_TIMEOUT:-540}" "$PY" benchmarks/gpu_check.py $DRY --out "$OUT_DIR" \
  --step-timeout "${GPU_CHECK_STEP_TIMEOUT:-240}" 2>&1 | tee "$OUT_DIR/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: exit $rc; results in $OUT_DIR/gpu_check.json"
exit "$rc"
