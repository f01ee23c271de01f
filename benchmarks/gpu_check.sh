#!/usr/bin/env bash
# GPU check: ResNet-18 throughput in float32 and bfloat16, the projected run time of the CIFAR-10
# sweep, the GPU-relevant tests and the offline default sweep end to end, in one script.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]     # OUT_DIR defaults to $OUT, else benchmarks/results
#
# With a GPU the whole script fits in 10 minutes (TOTAL_S=570 s from its start, plus at most 15 s
# for a part that ignores its timeout's SIGTERM to be killed). Every part runs
# under `timeout` with its own cap (and never past the total), so one slow part cannot eat the
# others' time; a failing part does not stop the next. The measurements come first:
#   b. (cap 190 s) preact_resnet18 training throughput at widths 64/32/16/8 (widest first, so a
#      cut keeps the widths that matter) on synthetic 32x32x3 images, batch 128, S=4 members,
#      vmap-scan vs loop-scan, each in float32 and bfloat16 -> gpu_resnet18.json/.md (the
#      markdown has a dtype column and a bfloat16-vs-float32 table; both files are rewritten
#      after every width, so a cut keeps what was measured). JAX_PLATFORMS stays unset: the GPU
#      is the default device and the host CPU backend is there to count FLOPs.
#   c. (cap 230 s) python -m benchmarks.project_cifar: configs/cifar10_resnet18.py on synthetic
#      CIFAR-shaped data, a short timed slice of every stage per width bucket, projected to the
#      full run -> gpu_cifar_projection.md/.json. Its own budget is the cap minus 60 s: past it,
#      no new slice starts and the rest are estimated (marked in the table).
#   a. (cap 150 s, in the background beside d) tests/test_models.py and tests/test_train.py on
#      the GPU -> gpu_tests.log.
#      tests/conftest.py defaults JAX_PLATFORMS to cpu with setdefault, so we set
#      JAX_PLATFORMS=cuda explicitly (and UNLEARN_JAX_TEST_PLATFORM=cuda for a conftest that
#      honours it). The equivalence tests compare float32 runs at ~1e-5, so they run with full
#      float32 matmul precision, not TF32.
#   d. (the time left) the README's offline default sweep end to end,
#      `python -m experiments.width_sweep --config=configs/mnist1d_mlp.py` (SWEEP_CONFIG=
#      `configs/mnist1d_mlp.py:all_widths,seeds=3,shadows=0` for the older 7 x 3 setting; SWEEP_ARGS
#      for more flags, e.g. `--config.stage_workers=4`) in a fresh workdir
#      with the persistent compilation cache off (a cold run) -> gpu_default_sweep.txt (wall
#      time, exit status or "TIMED OUT", run_info.json's stage_seconds), gpu_default_sweep.log,
#      and the workdir's run_info.json and report.md. A timeout here is reported, not a failure:
#      this part only gets what the others leave.
#   e. (not in the default PARTS, whose parts fill the 10 minutes: run it alone, PARTS=e; caps
#      CAP_CNN_S=280 and CAP_CIFAR_S=260) the second regime and the paper-scale pipeline end to
#      end, each in a fresh workdir with the compilation cache off: configs/mnist1d_cnn.py at
#      full size with 64 shadows per width -> gpu_cnn_sweep.txt/.log, gpu_cnn_report.md; then
#      configs/cifar10_resnet18.py:synthetic,epochs=2 (every stage on synthetic CIFAR-shaped
#      images) -> gpu_cifar_pipeline.txt/.log, gpu_cifar_pipeline_report.md.
# Each part's exit status and seconds are printed and written to gpu_check_summary.txt; the
# script exits non-zero if a part failed (a timeout of a, b or c counts as failed).
# Without a GPU: the GPU parts are skipped with a message, and the quick CPU versions of b
# (float32 and bfloat16) and c run, which checks the script and the benchmark machinery end to
# end: cpu_resnet18_quick.json/.md and cpu_cifar_projection_quick.md/.json (about 50 s on 2
# cores). GPU_CHECK_BACKEND=cpu forces this path on a GPU machine. The caps can be changed with
# TOTAL_S, CAP_THROUGHPUT_S, CAP_PROJECTION_S, CAP_TESTS_S, CAP_CNN_S and CAP_CIFAR_S; PARTS
# (default abcd) picks the parts to run, e.g. PARTS=bd or PARTS=e; THROUGHPUT_WIDTHS and
# THROUGHPUT_DTYPES (defaults 64,32,16,8 and float32,bfloat16) what part b measures, so a later
# check can measure what an earlier one left.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
TOTAL_S="${TOTAL_S:-570}"
CAP_THROUGHPUT_S="${CAP_THROUGHPUT_S:-190}"
CAP_PROJECTION_S="${CAP_PROJECTION_S:-230}"
CAP_TESTS_S="${CAP_TESTS_S:-150}"
CAP_CNN_S="${CAP_CNN_S:-280}"
CAP_CIFAR_S="${CAP_CIFAR_S:-260}"
PARTS="${PARTS:-abcd}"
THROUGHPUT_WIDTHS="${THROUGHPUT_WIDTHS:-64,32,16,8}"
THROUGHPUT_DTYPES="${THROUGHPUT_DTYPES:-float32,bfloat16}"
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/gpu_check_summary.txt"
: > "$SUMMARY"
failed=0

# Ask JAX itself (with any inherited JAX_PLATFORMS cleared) whether it sees a GPU.
backend="${GPU_CHECK_BACKEND:-$(env -u JAX_PLATFORMS "$PYTHON" -c \
           'import jax; print(jax.default_backend())' 2>/dev/null || echo cpu)}"
echo "gpu_check: JAX default backend is '$backend'; writing to $OUT_DIR"

# part NAME CAP_S TIMEOUT_FAILS LOG COMMAND...: runs COMMAND under `timeout`, at most CAP_S
# seconds and never past TOTAL_S, output shown and kept in LOG; records its exit status (also in
# PART_RC) and seconds. TIMEOUT_FAILS=1: a timeout (or no time left) makes the script fail.
part() {
  local name="$1" cap="$2" timeout_fails="$3" log="$4"
  shift 4
  if [[ "$PARTS" != *"${name:0:1}"* ]]; then
    echo "gpu_check: part $name not run: not in PARTS=$PARTS" | tee -a "$SUMMARY"
    return
  fi
  local left=$(( TOTAL_S - SECONDS ))
  (( cap > left )) && cap=$left
  if (( cap < 20 )); then
    echo "gpu_check: part $name SKIPPED: only ${left} s of the ${TOTAL_S} s left" | tee -a "$SUMMARY"
    (( timeout_fails )) && failed=1
    return
  fi
  echo "gpu_check: part $name (up to ${cap} s): $*"
  local start=$SECONDS rc=0
  timeout --kill-after=15 "$cap" "$@" 2>&1 | tee "$log" || rc=$?
  local status="exit $rc"
  if (( rc == 124 || rc == 137 )); then
    status="TIMED OUT after ${cap} s (exit $rc)"
    (( timeout_fails )) && failed=1
  elif (( rc != 0 )); then
    failed=1
  fi
  echo "gpu_check: part $name: $status, $(( SECONDS - start )) s" | tee -a "$SUMMARY"
  PART_RC=$rc
}

# timed_sweep NAME CAP OUT_STEM CONFIG [ARGS...]: one sweep in a fresh workdir, cache off, under
# `part` (a timeout fails it); wall time, status and stage seconds -> OUT_STEM.txt, its report
# -> OUT_STEM_report.md.
timed_sweep() {
  local name="$1" cap="$2" stem="$3" config="$4"
  shift 4
  local workdir t0 wall
  workdir="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_sweep.XXXXXX")"
  PART_RC=""
  t0="$(date +%s.%N)"
  part "$name" "$cap" 1 "$OUT_DIR/$stem.log" env -u JAX_PLATFORMS "$PYTHON" -m \
      experiments.width_sweep --config="$config" --workdir="$workdir" \
      --config.compilation_cache_dir= "$@"
  if [[ -z "$PART_RC" ]]; then   # not in PARTS, or no time left: nothing to report
    rm -rf "$workdir"
    return
  fi
  wall="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  {
    echo "command: --config=$config $*"
    echo "wall_s: $wall (exit $PART_RC)"
    [[ -f "$workdir/run_info.json" ]] && "$PYTHON" -c \
        'import json, sys; i = json.load(open(sys.argv[1])); print("complete:", i.get("complete")); print(json.dumps(i.get("stage_seconds"), indent=1))' \
        "$workdir/run_info.json"
  } > "$OUT_DIR/$stem.txt"
  [[ -f "$workdir/report.md" ]] && cp "$workdir/report.md" "$OUT_DIR/${stem}_report.md"
  rm -rf "$workdir"
}

if [[ "$backend" == "gpu" ]]; then
  timed_sweep "e1 (CNN regime, 64 shadows per width)" "$CAP_CNN_S" gpu_cnn_sweep \
      configs/mnist1d_cnn.py:shadows=64
  timed_sweep "e2 (CIFAR-10 pipeline, synthetic images, 2 epochs)" "$CAP_CIFAR_S" \
      gpu_cifar_pipeline configs/cifar10_resnet18.py:synthetic,epochs=2
fi

if [[ "$backend" == "gpu" ]]; then
  part "b (ResNet-18 throughput, $THROUGHPUT_DTYPES)" "$CAP_THROUGHPUT_S" 1 \
      "$OUT_DIR/gpu_resnet18.log" \
      env -u JAX_PLATFORMS "$PYTHON" -m benchmarks.run --only=train --models=preact_resnet18 \
      --widths="$THROUGHPUT_WIDTHS" --members=4 --batch-size=128 --steps=8 \
      --strategies=vmap-scan,loop-scan --compute-dtypes="$THROUGHPUT_DTYPES" \
      --out="$OUT_DIR/gpu_resnet18.json"

  # Its own budget leaves 60 s of the cap for the slice under way when it runs out.
  cap_c=$(( TOTAL_S - SECONDS < CAP_PROJECTION_S ? TOTAL_S - SECONDS : CAP_PROJECTION_S ))
  budget_c=$(( cap_c > 120 ? cap_c - 60 : (cap_c > 2 ? cap_c / 2 : 1) ))
  part "c (CIFAR-10 sweep projection)" "$CAP_PROJECTION_S" 1 "$OUT_DIR/gpu_cifar_projection.log" \
      env -u JAX_PLATFORMS "$PYTHON" -m benchmarks.project_cifar \
      --budget-s="$budget_c" --out="$OUT_DIR/gpu_cifar_projection.md"

  # The tests run beside the sweep: both mostly compile on the host's cores, the tests' kernels
  # are tiny, and run one after the other the sweep would get little of the 10 minutes. The tests
  # allocate GPU memory as they need it, so the sweep's preallocation leaves them enough.
  # A failing test's name and message go to the summary too (the log may not come back whole).
  ( part "a (GPU tests, beside d)" "$CAP_TESTS_S" 1 "$OUT_DIR/gpu_tests.log" \
      env JAX_PLATFORMS=cuda UNLEARN_JAX_TEST_PLATFORM=cuda JAX_DEFAULT_MATMUL_PRECISION=highest \
      XLA_PYTHON_CLIENT_PREALLOCATE=false \
      "$PYTHON" -m pytest tests/test_models.py tests/test_train.py -n 0 -q -rfE --tb=line > /dev/null
    grep -E "^(FAILED|ERROR) " "$OUT_DIR/gpu_tests.log" >> "$SUMMARY" 2>/dev/null ) &
  tests_pid=$!

  workdir="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_sweep.XXXXXX")"
  sweep_cmd=("$PYTHON" -m experiments.width_sweep --config="${SWEEP_CONFIG:-configs/mnist1d_mlp.py}"
             --workdir="$workdir" --config.compilation_cache_dir= ${SWEEP_ARGS:-})
  report="$OUT_DIR/gpu_default_sweep.txt"
  PART_RC=""
  t0="$(date +%s.%N)"
  part "d (default sweep end to end)" "$TOTAL_S" 0 "$OUT_DIR/gpu_default_sweep.log" \
      env -u JAX_PLATFORMS "${sweep_cmd[@]}"
  wall="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  {
    echo "command: ${sweep_cmd[*]}"
    if [[ -z "$PART_RC" ]]; then
      echo "NOT RUN: not in PARTS=$PARTS, or no time left in the ${TOTAL_S} s budget"
    elif (( PART_RC == 124 || PART_RC == 137 )); then
      echo "wall_s: $wall (TIMED OUT: stopped after the time the other parts left; incomplete)"
    else
      echo "wall_s: $wall (exit $PART_RC)"
    fi
    echo "last progress: $(grep -h 'sweep: stage' "$OUT_DIR/gpu_default_sweep.log" 2>/dev/null \
                           | tail -n 1)"
    if [[ -f "$workdir/run_info.json" ]]; then
      "$PYTHON" - "$workdir/run_info.json" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
print(f"complete: {info.get('complete')}")
print("stage_seconds:", json.dumps(info.get("stage_seconds"), indent=1) if "stage_seconds" in info
      else "(not written: the run did not finish)")
EOF
      cp "$workdir/run_info.json" "$OUT_DIR/run_info.json"
    fi
    [[ -f "$workdir/report.md" ]] && cp "$workdir/report.md" "$OUT_DIR/report.md"
  } > "$report"
  cat "$report"
  rm -rf "$workdir"
  wait "$tests_pid"
  if [[ "$PARTS" == *a* ]]; then
    grep -q "^gpu_check: part a (GPU tests, beside d): exit 0," "$SUMMARY" || failed=1
  fi
else
  echo "gpu_check: no GPU: skipping part a (GPU tests)" | tee -a "$SUMMARY"
  echo "gpu_check: no GPU: skipping the full-size parts b (throughput), c (projection), d" \
       "(default sweep) and e (CNN regime, CIFAR-10 pipeline); running quick CPU versions of b" \
       "and c" | tee -a "$SUMMARY"
  # CPU_QUICK_MODEL=mlp makes this part a few seconds (tests/test_gpu_check.py).
  part "b quick (${CPU_QUICK_MODEL:-preact_resnet18} throughput, float32 + bfloat16, CPU)" 150 1 \
      "$OUT_DIR/cpu_resnet18_quick.log" \
      env JAX_PLATFORMS=cpu "$PYTHON" -m benchmarks.run --quick --only=train \
      --models="${CPU_QUICK_MODEL:-preact_resnet18}" --strategies=loop-host \
      --compute-dtypes=float32,bfloat16 \
      --out="$OUT_DIR/cpu_resnet18_quick.json"
  part "c quick (CIFAR-10 sweep projection, CPU)" 150 1 "$OUT_DIR/cpu_cifar_projection_quick.log" \
      env JAX_PLATFORMS=cpu "$PYTHON" -m benchmarks.project_cifar --quick \
      --out="$OUT_DIR/cpu_cifar_projection_quick.md"
fi

echo "gpu_check: done in ${SECONDS} s; summary in $SUMMARY"
exit "$failed"
