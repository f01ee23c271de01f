#!/usr/bin/env bash
# GPU check: the test suite's GPU-relevant parts and ResNet-18 throughput, in one script.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]     # OUT_DIR defaults to $OUT, else benchmarks/results
#
# With a GPU (4-4.5 minutes on one H100, measured):
#   1. tests/test_models.py and tests/test_train.py on the GPU. tests/conftest.py defaults
#      JAX_PLATFORMS to cpu with setdefault, so we set JAX_PLATFORMS=cuda explicitly (and
#      UNLEARN_JAX_TEST_PLATFORM=cuda for a conftest that honours it). The equivalence tests
#      compare float32 runs at ~1e-5, so they run with full float32 matmul precision, not TF32.
#   2. preact_resnet18 training throughput at widths 8/16/32/64 on synthetic 32x32x3 images,
#      batch 128, S=4 members, vmapped vs one member at a time -> gpu_resnet18.json/.md.
# Without a GPU both are skipped and the same benchmark runs at the quick size on CPU, which
# checks the script and the benchmark machinery end to end.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
mkdir -p "$OUT_DIR"

# Ask JAX itself (with any inherited JAX_PLATFORMS cleared) whether it sees a GPU.
backend="$(env -u JAX_PLATFORMS "$PYTHON" -c 'import jax; print(jax.default_backend())' \
           2>/dev/null || echo cpu)"
echo "gpu_check: JAX default backend is '$backend'; writing to $OUT_DIR"

if [[ "$backend" == "gpu" ]]; then
  tests_rc=0
  JAX_PLATFORMS=cuda UNLEARN_JAX_TEST_PLATFORM=cuda JAX_DEFAULT_MATMUL_PRECISION=highest \
      "$PYTHON" -m pytest tests/test_models.py tests/test_train.py -q 2>&1 \
      | tee "$OUT_DIR/gpu_tests.log" || tests_rc=$?
  # JAX_PLATFORMS stays unset here: the GPU is the default device, and the host CPU backend stays
  # available for counting FLOPs (benchmarks/timing.py).
  bench_rc=0
  env -u JAX_PLATFORMS "$PYTHON" -m benchmarks.run --only=train --models=preact_resnet18 --widths=8,16,32,64 \
      --members=4 --batch-size=128 --steps=8 --strategies=vmap-scan,loop-scan \
      --out="$OUT_DIR/gpu_resnet18.json" || bench_rc=$?
  echo "gpu_check: tests exit $tests_rc, benchmark exit $bench_rc"
  exit $(( tests_rc != 0 || bench_rc != 0 ))
fi

echo "gpu_check: no GPU; skipping the GPU tests and the full-size GPU benchmark"
JAX_PLATFORMS=cpu "$PYTHON" -m benchmarks.run --quick --only=train --models=preact_resnet18 \
    --strategies=loop-host --out="$OUT_DIR/cpu_resnet18_quick.json"
