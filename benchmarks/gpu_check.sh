#!/usr/bin/env bash
# The one prepared command for the day a GPU is lent (issue 17): about 10 minutes of device time,
# nothing downloaded but CuPy (`pip install cupy-cuda12x`, only when it is missing).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
#   BUDGET=500 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# 1. CuPy installed if missing, the device named (nvidia-smi's line and CuPy's view of it);
# 2. the gpu-marked tests (`pytest -m gpu`: fused kernels vs their twins, NCCL sums (tests/train/test_distributed_gpu.py), the strided-batched GEMM per
#    precision, the deterministic scatter-add, gradchecks and parity on CuPy), at most 1/3 of the budget
#    (the parity tests with transformers need torch and transformers installed; nothing else is fetched);
# 3. benchmarks/gpu_bench.py with the rest: BERT-base seq 128 batch 32 training steps and MiniLM-shaped
#    inference per precision (fp32, tf32, fp16), achieved TFLOP/s and the fraction of the device's peak.
# Each part that fails prints one line and the next part runs; the exit code is that of the tests.
set -u
cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-python3}"
BUDGET="${BUDGET:-540}"                       # seconds for the whole check
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }

echo "== minibert gpu_check: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), budget ${BUDGET}s"
if ! "$PY" -c "import cupy" 2>/dev/null; then
    echo "== installing cupy-cuda12x"
    "$PY" -m pip install -q cupy-cuda12x || echo "error: pip install cupy-cuda12x failed"
fi
for m in numpy pytest; do
    "$PY" -c "import $m" 2>/dev/null || "$PY" -m pip install -q "$m" || echo "error: pip install $m failed"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "error: nvidia-smi not found"
"$PY" -c "import cupy; d = cupy.cuda.runtime.getDeviceProperties(0); \
print('cupy', cupy.__version__, 'device', d['name'].decode() if isinstance(d['name'], bytes) else d['name'], \
'cc', d['major'], d['minor'], 'cuda runtime', cupy.cuda.runtime.runtimeGetVersion())" \
    || echo "error: CuPy cannot see a CUDA device"

echo "== gpu-marked tests"
files=$(grep -rlE "pytest\.mark\.gpu|pytestmark = pytest\.mark\.gpu" tests --include='test_*.py' | sort)
test_time=$(( $(left) / 3 ))
PYTHONPATH="$PWD" timeout "$test_time" "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs \
    --continue-on-collection-errors $files
tests_rc=$?
[ "$tests_rc" -eq 124 ] && echo "error: the gpu tests ran past ${test_time}s and were stopped"

echo "== benchmarks (budget $(left)s)"
bench_budget=$(( $(left) - 30 ))
if [ "$bench_budget" -gt 30 ]; then
    PYTHONPATH="$PWD" MINIBERT_BACKEND=cupy timeout $(( bench_budget + 25 )) \
        "$PY" benchmarks/gpu_bench.py --budget "$bench_budget" || echo "error: gpu_bench.py exited with $?"
else
    echo "skipped: benchmarks: no time left"
fi
echo "== done in $(( $(date +%s) - start ))s (tests exit code $tests_rc)"
exit "$tests_rc"
