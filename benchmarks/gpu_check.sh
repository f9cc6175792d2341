#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and nothing but this checkout: installs numrnn with
# its test and cuda extras into a fresh virtual environment (.venv-gpu), then runs on the real GPU
#   1. the CUDA test set (tests/cuda_sim with NUMRNN_TEST_GPU=1, not the simulator) and the compile check,
#   2. the shared contract check with --device cuda (when ../shared/checks/contract.py is there),
#   3. 200 steps of `numrnn train --device cuda` against the same 200 steps on the CPU,
#   4. benchmarks/gpu.py against cuDNN (when the installed torch has CUDA),
# and prints one summary. Each part has its own time limit, 460 s in all after the install. Exit code: 0 all ran and passed (skips allowed), 1 a part failed, 2 no usable GPU.
# usage: bash benchmarks/gpu_check.sh
#   VENV=path   another virtual environment (created and installed into if missing)
#   PYTHON=path a Python that already has numrnn[test,cuda] (no install: for machines with no network)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv-gpu}
OUT=$(mktemp -d)
SUMMARY=()

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists none); run it on a machine with one"
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | sed 's/^/gpu_check: GPU: /'

if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
else
    if [ ! -x "$VENV/bin/python" ]; then
        echo "gpu_check: installing numrnn[test,cuda] into $VENV"
        python3 -m venv "$VENV" && "$VENV/bin/python" -m pip install -q --upgrade pip \
            && "$VENV/bin/python" -m pip install -q -e ".[test,cuda]" \
            || { echo "gpu_check: the install failed (no network? then PYTHON=a Python that has numrnn[test,cuda])"; exit 1; }
    fi
    PY="$VENV/bin/python"
fi
PROBLEM=$("$PY" -c "from numrnn.device import cuda_problem; print(cuda_problem() or '')")
if [ -n "$PROBLEM" ]; then
    echo "gpu_check: device='cuda' cannot run: $PROBLEM"
    exit 2
fi

# run NAME LIMIT_S COMMAND...: runs one part with a time limit, keeps its log, records a summary line
run() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "gpu_check: $name ..."
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$? verdict=PASS why=""
    if [ $rc -eq 124 ]; then verdict=FAIL why="stopped at its ${limit} s limit; "
    elif [ $rc -ne 0 ]; then verdict=FAIL why="exit $rc; "; fi
    tail -n 3 "$OUT/$name.log" | sed "s/^/    /"
    SUMMARY+=("$(printf '%-10s %-4s %4d s  %s' "$name" $verdict $((SECONDS - t0)) "$why$(tail -n 1 "$OUT/$name.log")")")
    [ $verdict = PASS ]
}

FAILED=0
run tests 180 env NUMRNN_TEST_GPU=1 "$PY" -m pytest -q -p no:cacheprovider tests/cuda_sim tests/test_cuda_compile.py || FAILED=1

CONTRACT="$ROOT/../shared/checks/contract.py"
if [ -f "$CONTRACT" ]; then
    run contract 60 "$PY" "$CONTRACT" --device cuda || FAILED=1
else
    SUMMARY+=("contract   SKIP          no ../shared/checks/contract.py beside this checkout")
fi

# the README as the text: a validation split small enough that evaluating it takes no time
TRAIN=(--data README.md --steps 200 --eval-every 50 --hidden-size 128 --seed 1)
for device in cpu cuda; do
    run "train-$device" 60 "$PY" -m numrnn.cli train "${TRAIN[@]}" --device "$device" \
        --out "$OUT/$device.safetensors" --metrics "$OUT/$device.jsonl" || FAILED=1
done
if [ -s "$OUT/cpu.jsonl" ] && [ -s "$OUT/cuda.jsonl" ]; then
    # float32 on both: sums run in other orders, so the curves drift apart a little over 200 steps
    run train-cmp 10 "$PY" -c "
import json, sys
cpu, gpu = ([json.loads(l) for l in open(f'$OUT/{d}.jsonl')] for d in ('cpu', 'cuda'))
worst = max(abs(g['val_loss'] - c['val_loss']) / c['val_loss'] for c, g in zip(cpu, gpu))
print(f'val loss at steps {[m[\"step\"] for m in gpu]}: cuda {gpu[-1][\"val_loss\"]:.4f}, cpu {cpu[-1][\"val_loss\"]:.4f}, '
      f'worst relative difference {worst:.1e} (limit 1e-2); tokens/s cuda {gpu[-1][\"tokens_per_s\"]:.0f}, cpu {cpu[-1][\"tokens_per_s\"]:.0f}')
sys.exit(0 if len(cpu) == len(gpu) and worst < 1e-2 else 1)" || FAILED=1
fi

if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    run bench 90 "$PY" benchmarks/gpu.py --T 50 --repeat 5 || FAILED=1
else
    SUMMARY+=("bench      SKIP          the installed torch has no CUDA (a CUDA build of torch==2.13.0 is needed for cuDNN)")
fi

echo
echo "gpu_check summary (logs in $OUT):"
printf '  %s\n' "${SUMMARY[@]}"
exit $FAILED
