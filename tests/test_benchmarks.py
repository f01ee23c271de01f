"""The benchmark command end to end at the tiniest sizes, its tables, and the GPU check script."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # benchmarks/ is not an installed package

from benchmarks import report, run  # noqa: E402

MACHINE_FIELDS = {"backend", "device_kind", "cpu_model", "cpu_count", "jax_version",
                  "peak_flops", "peak_assumption"}
ROW_FIELDS = {"benchmark", "strategy", "rate", "unit", "rate_per_member", "first_call_s",
              "steady_s", "compile_s", "flops_per_s", "fraction_of_peak"}


QUICK_STRATEGIES = ["vmap-scan", "loop-host", "vmap-scan-c2"]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench") / "quick.json"
  # Only the MLP cases and two strategies keep this inside the time budget; the test checks the
  # machinery and the output format, not speed, so compile with few optimisations (as
  # conftest.py does for every in-process test) and use one CPU device.
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.run", "--quick", "--models=mlp",
       "--strategies=" + ",".join(QUICK_STRATEGIES), f"--out={out}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    doc = json.load(f)
  return doc, out, proc.stdout


def test_quick_results_have_fields_and_positive_rates(quick_results):
  doc, out, stdout = quick_results
  assert MACHINE_FIELDS <= set(doc["machine"])
  assert doc["machine"]["backend"] == "cpu" and doc["machine"]["cpu_count"] >= 1
  assert doc["settings"]["quick"] is True and not doc["errors"]
  rows = doc["results"]
  benches = {r["benchmark"] for r in rows}
  assert {"train", "padding", "regions"} <= benches
  # The unlearning benchmark runs whenever unlearn_jax.methods exposes the runner.
  assert "unlearn" in benches or any(s["benchmark"] == "unlearn" for s in doc["skipped"])
  for row in rows:
    assert ROW_FIELDS <= set(row), row
    assert row["rate"] > 0 and row["rate_per_member"] > 0 and row["steady_s"] > 0, row
    assert row["first_call_s"] >= row["compile_s"] >= 0, row
  train = [r for r in rows if r["benchmark"] == "train"]
  assert {r["strategy"] for r in train} == set(QUICK_STRATEGIES)
  # Every strategy does the same work: one member's step counts the same FLOPs in each row.
  assert len({r["flops_per_step_member"] for r in train}) == 1
  for r in train:
    assert r["model"] == "mlp" and r["unit"] == "examples/s"
    assert r["flops_per_step_member"] > 0 and 0 < r["fraction_of_peak"]
    assert r["rate"] == pytest.approx(r["rate_per_member"] * r["members"])
  padding = {r["strategy"].split()[-1]: r for r in rows if r["benchmark"] == "padding"}
  assert set(padding) == {"bucket-padded", "each-alone"}
  assert padding["each-alone"]["slowdown_vs_alone"] == pytest.approx(1.0)
  assert 0 < padding["bucket-padded"]["useful_flops_fraction"] < 1
  # Markdown next to the JSON and on stdout.
  assert os.path.exists(os.path.splitext(out)[0] + ".md")
  assert "| benchmark | case | strategy |" in stdout and "## Strategy choice" in stdout


def test_table_only_regenerates_markdown_and_readme_block(quick_results, tmp_path):
  doc, out, _ = quick_results
  proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--table-only", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == report.to_markdown(doc).strip()
  with open(os.path.join(ROOT, "benchmarks", "README.md")) as f:
    readme = f.read()
  updated = report.update_readme(readme, report.strategy_sections([doc]))
  assert "| train | mlp/mnist1d |" in updated and report.README_END in updated
  # Idempotent: regenerating from the same results changes nothing more.
  assert report.update_readme(updated, report.strategy_sections([doc])) == updated


def test_strategy_names_round_trip():
  from benchmarks import training  # pylint: disable=g-import-not-at-top
  for name in ("vmap-scan", "loop-host", "chunk4-scan", "vmap-scan-c2", "vmap-host-c3"):
    assert training.strategy_name(training.parse_strategy(name, "mlp", 8)) == name
  assert training.parse_strategy("auto-c1", "mlp", 8).chunks == 1
  assert report._members_kind("vmap-scan-c2") == "chunk"   # pylint: disable=protected-access
  assert report._members_kind("vmap-scan") == "vmap"   # pylint: disable=protected-access
  assert training.parse_strategy("auto-c1", "mlp", 256) == dataclasses.replace(
      training.train.auto_strategy("mlp", 256), chunks=1)
  for bad in ("fast", "vmap-scan-g2", "vmap-scan-fused"):
    with pytest.raises(ValueError, match="Bad strategy name"):
      training.parse_strategy(bad, "mlp", 8)


def test_sweep_only_in_full_mode():
  args = run.parse_args(["--quick", "--only=sweep"])
  assert args.only == {"sweep"}
  assert "sweep" not in run.parse_args([]).only
  with pytest.raises(SystemExit):
    run.parse_args(["--only=nonsense"])


def test_cpu_peak_estimate_from_cpuinfo():
  from benchmarks import machine  # pylint: disable=g-import-not-at-top
  peak, why = machine.cpu_peak({"model name": "Intel Xeon @ 2.00GHz", "vendor_id": "GenuineIntel",
                                "flags": "fma avx avx2 avx512f"})
  assert peak == pytest.approx(machine._num_cpus() * 2.0e9 * 64)  # pylint: disable=protected-access
  assert "64 fp32 FLOP/cycle" in why
  amd = {"model name": "AMD EPYC", "vendor_id": "AuthenticAMD", "cpu MHz": "2600.0",
         "flags": "fma avx avx2 avx512f"}
  zen4, _ = machine.cpu_peak({**amd, "cpu family": "25"})
  zen5, why = machine.cpu_peak({**amd, "cpu family": "26"})
  assert (zen4, zen5) == pytest.approx((machine._num_cpus() * 2.6e9 * 32,  # pylint: disable=protected-access
                                        machine._num_cpus() * 2.6e9 * 64))  # pylint: disable=protected-access
  assert "Zen 5" in why
  assert machine.gpu_peaks("NVIDIA H100 80GB HBM3")["bf16"] == pytest.approx(989.5e12)
  assert machine.gpu_peaks("NVIDIA H100 PCIe")["tf32"] == pytest.approx(378e12)
  assert machine.gpu_peaks("NVIDIA H200")["fp32"] == pytest.approx(67e12)
  assert machine.gpu_peaks("some other card") is None


def test_cpu_reference_peak_is_a_measured_matmul():
  from benchmarks import machine  # pylint: disable=g-import-not-at-top
  flops = machine.matmul_flops(n=256, min_seconds=0.05)
  assert 1e8 < flops < 1e14   # a 256^2 matmul: 33.5 MFLOP in between 0.3 us and 0.3 s
  info = machine.describe()
  assert info["peak_flops"] == info["peaks"]["fp32_matmul"] > 0
  assert "matmul measured at" in info["peak_assumption"]
  assert machine.describe(peak_override=5e10)["peak_flops"] == 5e10


def test_gpu_check_script_parses():
  proc = subprocess.run(["bash", "-n", os.path.join(ROOT, "benchmarks", "gpu_check.sh")],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr


TINY_BASELINE = ["--widths=4", "--seeds=2", "--steps=20", "--num_samples=600"]


def _check_baseline(rows, table, frameworks):
  assert [(r.width, r.seeds, r.steps) for r in rows] == [(4, 2, 21)]   # 7 epochs x 3 steps
  times = {"jax": ("jax_init_s", "jax_first_epoch_s", "jax_rest_s", "jax_total_s"),
           "torch": ("torch_s",)}
  for framework, names in times.items():
    for name in names:
      value = getattr(rows[0], name)
      if framework in frameworks:
        assert value is not None and np.isfinite(value) and value > 0, (name, value)
      else:
        assert value is None, name
  assert "| width | seeds | steps | jax init s |" in table
  assert table.count("\n| 4 | 2 | 21 |") == 1


def test_torch_baseline_jax_side_at_tiny_size(tmp_path, capsys):
  from benchmarks import torch_baseline  # pylint: disable=g-import-not-at-top
  out = tmp_path / "baseline.md"
  rows, table = torch_baseline.main(TINY_BASELINE + ["--frameworks=jax", f"--out={out}"])
  _check_baseline(rows, table, {"jax"})
  assert rows[0].ratio is None and np.isfinite(rows[0].jax_loss)
  assert "| 4 | 2 | 21 |" in capsys.readouterr().out
  assert out.read_text() == table + "\n"


def test_torch_baseline_torch_side_at_tiny_size():
  pytest.importorskip("torch")
  from benchmarks import torch_baseline  # pylint: disable=g-import-not-at-top
  rows, table = torch_baseline.main(TINY_BASELINE + ["--frameworks=torch", "--threads=1"])
  _check_baseline(rows, table, {"torch"})
  assert np.isfinite(rows[0].torch_loss)


def test_torch_baseline_says_how_to_install_torch(monkeypatch, capsys):
  from benchmarks import torch_baseline  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(torch_baseline, "torch_version", lambda: None)
  with pytest.raises(SystemExit) as exit_info:
    torch_baseline.main(TINY_BASELINE)
  assert exit_info.value.code == 2
  assert "pip install -e .[bench]" in capsys.readouterr().err


def test_side_by_side_programs_give_bitwise_the_same_models(capsys):
  from benchmarks import side_by_side  # pylint: disable=g-import-not-at-top
  r = side_by_side.case(width=4, members=2, epochs=1)
  assert r["bitwise_equal"] is True
  assert r["sequential_s"] > 0 and r["side_by_side_s"] > 0
  side_by_side.main(["--cases=4x2", "--epochs=1"])
  assert "| 4 | 2 |" in capsys.readouterr().out


def test_machine_line_names_the_xla_flags_of_a_run():
  doc = {"machine": {"backend": "cpu", "cpu_model": "X", "cpu_count": 2, "jax_version": "0",
                     "peak_flops": 1e11, "peak_assumption": "a guess"},
         "settings": {"quick": False, "xla_flags": "--xla_cpu_use_fusion_emitters=true"},
         "created": "now"}
  assert "XLA_FLAGS=--xla_cpu_use_fusion_emitters=true" in report.machine_line(doc)
  doc["settings"]["xla_flags"] = ""
  assert "XLA_FLAGS" not in report.machine_line(doc)
