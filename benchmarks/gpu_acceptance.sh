#!/usr/bin/env bash
# GPU acceptance: one command, about 5 minutes on one H200. Proves the measurement (kanbench selfcheck), times every
# implementation in float32 / bfloat16 / float16, compiles four of them (each compiled cell must really compile),
# profiles three (CUDA kernels per call must be present), writes the report, then checks every record for
# plausibility (benchmarks/gpu_acceptance.py). Exit status: 0 only when every step and every check passed.
#
#   bash benchmarks/gpu_acceptance.sh [OUT_DIR]        default results/runs/gpu-acceptance-<UTC time>
#
# PYTHON picks the interpreter (default python3). GPU_ACCEPTANCE_DEVICE=cpu rehearses the script on a machine
# without a GPU (the suites' device becomes cpu, the CUDA-only checks are left out): slow, and no evidence about CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DEVICE=${GPU_ACCEPTANCE_DEVICE:-cuda}
OUT=${1:-results/runs/gpu-acceptance-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
failed=()
started=$(date +%s)

step() {  # step NAME COMMAND...: run it, say how long it took, remember a failure and go on
  local name=$1
  shift
  local t0
  t0=$(date +%s)
  echo "== $name: $*"
  if "$@"; then
    echo "== $name: ok ($(($(date +%s) - t0)) s)"
  else
    echo "== $name: FAILED (exit $?, $(($(date +%s) - t0)) s)"
    failed+=("$name")
  fi
}

suite() {  # the suite file for this device
  if [ "$DEVICE" = cuda ]; then
    echo "suites/$1.toml"
  else
    sed 's/^device = \["cuda"\]/device = ["'"$DEVICE"'"]/' "suites/$1.toml" >"$OUT/$1.toml"
    echo "$OUT/$1.toml"
  fi
}

step selfcheck "$PY" -m kanbench selfcheck --device "$DEVICE"
step speed "$PY" -m kanbench run "$(suite gpu-acceptance)" --out "$OUT/speed"
step compile "$PY" -m kanbench run "$(suite gpu-acceptance-compile)" --out "$OUT/compile"
step profile "$PY" -m kanbench profile "$(suite gpu-acceptance-profile)" --out "$OUT/profile" --traces "$OUT/traces"
step report "$PY" -m kanbench report "$OUT/speed" "$OUT/compile" "$OUT/profile" -o "$OUT/report.html"
step plausible "$PY" benchmarks/gpu_acceptance.py --device "$DEVICE" "$OUT"

echo "gpu acceptance: $(($(date +%s) - started)) s in all, run directories under $OUT"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "PASSED"
