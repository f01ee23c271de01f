"""benchmarks/gpu_check.sh on CPU (its skip messages and the quick benchmarks it runs instead),
the arithmetic of benchmarks/project_cifar.py's projection, and the compute-dtype output of
benchmarks/run.py."""
import json
import math
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # benchmarks/ is not an installed package

from benchmarks import project_cifar as pc  # noqa: E402
from benchmarks import report, run  # noqa: E402


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
  out = tmp_path_factory.mktemp("gpu_check")
  # The CPU path on any machine (GPU_CHECK_BACKEND), one host device, few compiler
  # optimisations: it checks the script and the machinery, not speed.
  # The MLP stands in for the ResNet in the quick throughput part (same machinery, seconds
  # instead of half a minute of convolution compiles).
  env = dict(os.environ, JAX_PLATFORMS="cpu", GPU_CHECK_BACKEND="cpu",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1", CPU_QUICK_MODEL="mlp")
  env.pop("XLA_FLAGS", None)
  env.pop("OUT", None)
  start = time.perf_counter()
  proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), str(out)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  return proc, out, time.perf_counter() - start


def test_gpu_check_on_cpu_skips_gpu_parts_and_runs_quick_versions(cpu_check):
  proc, out, elapsed = cpu_check
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert elapsed < 90, f"gpu_check.sh took {elapsed:.0f} s on CPU"   # ~50 s on 2 shared cores
  text = proc.stdout
  assert "no GPU: skipping part a (GPU tests)" in text
  assert ("skipping the full-size parts b (throughput), c (projection), d (default sweep) and "
          "e (CNN regime, CIFAR-10 pipeline)") in text
  summary = (out / "gpu_check_summary.txt").read_text()
  assert "part b quick (mlp throughput, float32 + bfloat16, CPU): exit 0" in summary
  assert "part c quick (CIFAR-10 sweep projection, CPU): exit 0" in summary
  assert not (out / "gpu_resnet18.json").exists() and not (out / "gpu_tests.log").exists()


def test_gpu_check_quick_throughput_has_both_dtypes(cpu_check):
  _, out, _ = cpu_check
  doc = json.loads((out / "cpu_resnet18_quick.json").read_text())
  assert doc["complete"] and not doc["errors"]
  assert doc["settings"]["compute_dtypes"] == ["float32", "bfloat16"]
  rows = doc["results"]
  assert [(r["compute_dtype"], r["strategy"]) for r in rows] == [
      ("float32", "loop-host"), ("bfloat16", "loop-host")]
  for r in rows:
    assert r["model"] == "mlp" and r["rate"] > 0 and r["steady_s"] > 0
  markdown = (out / "cpu_resnet18_quick.md").read_text()
  assert "| benchmark | case | strategy | dtype | rate | unit | per member |" in markdown
  assert "| loop-host | bfloat16 |" in markdown and "| loop-host | float32 |" in markdown
  assert "## bfloat16 vs float32 (training)" in markdown
  assert "## Strategy choice (bfloat16)" in markdown


def test_gpu_check_gpu_path_with_no_parts_selected(tmp_path):
  """The GPU branch's control flow (the background test part, the sweep report) without running
  anything: PARTS names none of a-e, so every part is reported as not run."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", GPU_CHECK_BACKEND="gpu", PARTS="z",
             SWEEP_ARGS="--config.stage_workers=4 --config.seeds=2")
  env.pop("OUT", None)
  proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), str(tmp_path)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  summary = (tmp_path / "gpu_check_summary.txt").read_text().splitlines()
  assert sorted(line.split(" (")[0] for line in summary) == [
      f"gpu_check: part {p}" for p in ("a", "b", "c", "d", "e1", "e2")]
  assert all(line.endswith("not run: not in PARTS=z") for line in summary), summary
  sweep = (tmp_path / "gpu_default_sweep.txt").read_text()
  assert "NOT RUN: not in PARTS=z" in sweep
  assert sweep.splitlines()[0].endswith(
      "--config=configs/mnist1d_mlp.py --workdir=" + sweep.split("--workdir=")[1].split()[0]
      + " --config.compilation_cache_dir= --config.stage_workers=4 --config.seeds=2"), sweep


def test_gpu_check_quick_projection_table(cpu_check):
  _, out, _ = cpu_check
  markdown = (out / "cpu_cifar_projection_quick.md").read_text()
  assert ("| stage | bucket | members | measured s/step | timed steps | full steps | setup s "
          "| compile s | projected min | how |") in markdown
  lines = [line for line in markdown.splitlines() if line.startswith("| ") and "measured |" in line]
  stages = [line.split(" | ")[0].lstrip("| ") for line in lines]
  assert stages == ["train original", "train retrained", "unlearn scrub", "unlearn ssd"]
  assert "**Total projected:" in markdown and "INCOMPLETE" not in markdown
  doc = json.loads((out / "cpu_cifar_projection_quick.json").read_text())
  assert doc["complete"] and not doc["errors"] and doc["totals"]["missing"] == []
  for s in doc["slices"]:
    assert s["how"] == "measured" and s["s_per_step"] > 0 and s["full_steps"] > 0, s
    assert s["projected_s"] == pytest.approx(s["s_per_step"] * s["full_steps"] + s["setup_s"])
  # :smoke: 160 train / 140 retain / 20 forget, batch 128 (train) and 32 (unlearn), 3 epochs;
  # SCRUB 1 epoch of msteps 1: its max pass (1 step) and its min pass (5 steps).
  full = {s["stage"]: s["full_steps"] for s in doc["slices"]}
  assert full == {"train original": 3, "train retrained": 3, "unlearn scrub": 6,
                  "unlearn ssd": 1 + 5}
  assert doc["totals"]["total_h"] == pytest.approx(
      sum(s["projected_s"] for s in doc["slices"]) / 3600)


# ---- The projection arithmetic, by hand ------------------------------------------------------
def test_step_counts_of_the_cifar_config():
  # 40,000 train = 39,800 retain + 200 forget; batch 128; 100 epochs.
  assert pc.train_steps(100, 40_000, 128) == 100 * 312
  assert pc.train_steps(100, 39_800, 128) == 100 * 310
  # SCRUB, 5 epochs, msteps grid (1, 2, 3): max pass (ceil(200/128) = 2 steps) in epochs 0-2,
  # min pass (ceil(39800/128) = 311 steps) in all 5.
  scrub = [("forget", [1.0, 2.0, 3.0]), ("retain", None)]
  pools = {"retain": 39_800, "forget": 200}
  assert pc.gradient_steps(scrub, pools, 128, range(5)) == 3 * 2 + 5 * 311
  # Its slice: 2 retain batches; the second epoch (index 1) still runs the max pass.
  assert pc.gradient_steps(scrub, {"retain": 256, "forget": 200}, 128, [1]) == 2 + 2
  assert pc.gradient_steps([("forget", [1.0])], pools, 128, [1]) == 0
  # SSD: forget 2 batches + reference 'train' ceil(40000/128) = 313 or 'retain' 311.
  assert pc.ssd_steps(200, 39_800, 128, "train") == 2 + 313
  assert pc.ssd_steps(200, 39_800, 128, "retain") == 2 + 311


def test_projection_by_hand():
  slices = [
      # 16 steps in 2 s: 0.125 s/step x 31,200 steps = 3,900 s = 65 min.
      pc.Slice("train original", "64", 3, 2.0, 16, 31_200, compile_s=12.0),
      pc.Slice("train retrained", "64", 3, 2.0, 16, 31_000),            # 3,875 s
      # 4 steps in 2 s: 0.5 s/step x 1,561 + 19.5 s setup = 800 s.
      pc.Slice("unlearn scrub", "64", 36, 2.0, 4, 1_561, setup_s=19.5, compile_s=20.0),
      pc.Slice("unlearn ssd", "64", 36, None, 6, 315, how="not measured"),
  ]
  assert slices[0].s_per_step == 0.125 and slices[0].projected_s == 3_900
  assert slices[2].projected_s == pytest.approx(800.0)
  assert slices[3].projected_s is None
  totals = pc.project(slices)
  assert totals["total_h"] == pytest.approx((3_900 + 3_875 + 800) / 3600)   # 2.3819 h
  assert totals["train_h"] == pytest.approx(7_775 / 3600)
  assert totals["unlearn_h"] == pytest.approx(800 / 3600)
  assert totals["compile_s"] == 32.0
  assert totals["missing"] == ["unlearn ssd 64"] and totals["estimated"] == 0
  text = pc.markdown({"title": "t", "description": "d"}, slices, complete=False)
  assert "| train original | 64 | 3 | 0.125 | 16 | 31200 | 0 | 12 | 65 | measured |" in text
  assert "| unlearn scrub | 64 | 36 | 0.5 | 4 | 1561 | 19.5 | 20 | 13.3 | measured |" in text
  assert "**Total projected: 2.38 hours**" in text
  assert "Not projected (not measured, nothing to estimate from): unlearn ssd 64" in text
  assert "INCOMPLETE" in text


def test_estimates_of_slices_left_out():
  # Training seconds per member-step: bucket 64: 0.125 / 3; bucket 16-32: 0.06 / 6 = 0.01.
  train_cost = {"64": 0.125 / 3, "16-32": 0.01}
  scrub_64 = pc.Slice("unlearn scrub", "64", 36, 2.88, 4, 1_561, setup_s=3.0)   # 0.72 s/step
  # The same method on another bucket: 0.72 / 36 = 0.02 per member-step, x (0.01 / (0.125/3))
  # = x 0.24, x 72 members = 0.3456 s/step; the setup scales by 0.24 too.
  est = pc.estimate("unlearn scrub", "16-32", 72, 4, 1_561, [scrub_64], train_cost)
  assert est.s_per_step == pytest.approx(0.3456) and est.setup_s == pytest.approx(0.72)
  assert est.how == "scaled from bucket 64"
  assert est.projected_s == pytest.approx(0.3456 * 1_561 + 0.72)
  # A method measured nowhere: training cost x the mean unlearning / training ratio
  # (0.02 / (0.125 / 3) = 0.48): bucket 64, 24 members -> 0.125/3 x 0.48 x 24 = 0.48 s/step.
  est = pc.estimate("unlearn salun", "64", 24, 4, 3_130, [scrub_64], train_cost)
  assert est.s_per_step == pytest.approx(0.48) and "mean unlearning ratio (0.48)" in est.how
  # No training measured on the bucket: nothing to scale by.
  est = pc.estimate("unlearn scrub", "4-8", 72, 4, 1_561, [scrub_64], train_cost)
  assert est.s_per_step is None and est.how == "not measured"
  assert math.isclose(pc.project([est, scrub_64])["total_h"], scrub_64.projected_s / 3600)


# ---- benchmarks/run.py's compute dtypes ------------------------------------------------------
def _train_row(dtype, rate, strategy="vmap-scan"):
  return {"benchmark": "train", "model": "preact_resnet18", "dataset": "synthetic", "width": 64,
          "members": 4, "batch_size": 128, "steps_per_call": 8, "strategy": strategy,
          "compute_dtype": dtype, "rate": rate, "unit": "examples/s", "rate_per_member": rate / 4,
          "first_call_s": 10.0, "steady_s": 1.0, "compile_s": 9.0, "flops_per_s": None,
          "fraction_of_peak": None}


def _doc(rows):
  return {"machine": {"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3", "cpu_count": 16,
                      "cpu_model": "x", "jax_version": "0", "peak_flops": 494.5e12,
                      "peak_assumption": "tf32"},
          "created": "now", "settings": {"quick": False}, "results": rows, "skipped": [],
          "errors": [], "complete": True}


def test_markdown_is_unchanged_for_float32_and_gains_a_dtype_column_with_bfloat16():
  f32_only = _doc([_train_row("float32", 1000.0)])
  assert run.to_markdown(f32_only) == report.to_markdown(f32_only)
  both = _doc([_train_row("float32", 1000.0), _train_row("bfloat16", 1500.0),
               _train_row("float32", 800.0, "loop-scan")])
  text = run.to_markdown(both)
  assert "| benchmark | case | strategy | dtype | rate |" in text
  assert "| vmap-scan | bfloat16 | 1.5k | examples/s |" in text
  assert "| preact_resnet18/synthetic | 64 | 4 | 128 | vmap-scan | 1k | 1.5k | 1.50 |" in text
  assert "| preact_resnet18/synthetic | 64 | 4 | 128 | loop-scan | 800 | - | - |" in text
  assert "## Strategy choice (float32)" in text and "## Strategy choice (bfloat16)" in text
  assert "INCOMPLETE" in run.to_markdown(dict(both, complete=False))


def test_compute_dtypes_option_and_reference_peak():
  assert run.parse_args([]).compute_dtypes == ["float32"]
  assert run.parse_args(["--compute-dtypes=float32,bfloat16"]).compute_dtypes == [
      "float32", "bfloat16"]
  with pytest.raises(SystemExit):
    run.parse_args(["--compute-dtypes=float16"])
  gpu = {"backend": "gpu", "peak_flops": 494.5e12, "peak_assumption": "H100: dense tf32",
         "peaks": {"tf32": 494.5e12, "bf16": 989.5e12}}
  assert run.reference_peak(gpu, "float32") == 494.5e12
  assert run.reference_peak(gpu, "bfloat16") == 989.5e12
  assert run.reference_peak(dict(gpu, peak_assumption="given with --peak-flops"),
                            "bfloat16") == 494.5e12
  cpu = {"backend": "cpu", "peak_flops": 1e11, "peak_assumption": "", "peaks": {"fp32": 1e11}}
  assert run.reference_peak(cpu, "bfloat16") == 1e11
  cases = [{"widths": [8, 64], "members": 4}]
  assert [(c["widths"], c["compute_dtype"]) for c in run.train_jobs(cases, ["float32",
                                                                          "bfloat16"])] == [
      ([8], "float32"), ([8], "bfloat16"), ([64], "float32"), ([64], "bfloat16")]
