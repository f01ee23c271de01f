"""The benchmark command end to end at the tiniest sizes, its tables, and the GPU check script."""
import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # benchmarks/ is not an installed package

from benchmarks import blas_call, report, run  # noqa: E402

MACHINE_FIELDS = {"backend", "device_kind", "cpu_model", "cpu_count", "jax_version",
                  "peak_flops", "peak_assumption"}
ROW_FIELDS = {"benchmark", "strategy", "rate", "unit", "rate_per_member", "first_call_s",
              "steady_s", "compile_s", "flops_per_s", "fraction_of_peak"}


# The product-variant rows need a C++ compiler and numpy's OpenBLAS (test_blas_call.py).
PRODUCT_ROWS = [] if blas_call.unavailable_reason() else ["vmap-scan-blas", "vmap-scan-nodots"]
QUICK_STRATEGIES = ["vmap-scan", "loop-host", "dots-only", "dots-only-c2", "dots-blas",
                    *PRODUCT_ROWS]


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
  step = next(r for r in train if r["strategy"] == "vmap-scan")
  dots = next(r for r in train if r["strategy"] == "dots-only")
  # The step does its dots and more (elementwise work, the update).
  assert 0.5 * step["flops_per_step_member"] < dots["flops_per_step_member"] < \
      step["flops_per_step_member"]
  # Every ceiling times the same products, whoever's kernels run them.
  assert {r["flops_per_step_member"] for r in train if report.is_ceiling(r["strategy"])} == {
      dots["flops_per_step_member"]}
  if PRODUCT_ROWS:
    # The custom calls do the step's arithmetic: the step's count stands for it; the zero
    # fills do none, so that row has no FLOP/s.
    variants = {r["strategy"]: r for r in train if r["strategy"] in PRODUCT_ROWS}
    assert variants["vmap-scan-blas"]["flops_per_step_member"] == step["flops_per_step_member"]
    nodots = variants["vmap-scan-nodots"]
    assert nodots["flops_per_step_member"] is None and nodots["fraction_of_peak"] is None
  for r in train:
    assert r["model"] == "mlp" and r["unit"] == "examples/s"
    if r["strategy"].endswith("-nodots"):
      continue
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
  for name in ("vmap-scan", "loop-host", "chunk4-scan", "vmap-scan-fused", "vmap-scan-g2",
               "chunk8-host-g3-fused", "vmap-scan-c2", "vmap-host-c3-g2-fused"):
    assert training.strategy_name(training.parse_strategy(name, "mlp", 8)) == name
  assert training.parse_strategy("auto-fused", "mlp", 8).fused_dots
  assert training.parse_strategy("auto-g3", "mlp", 8).groups == 3
  assert training.parse_strategy("auto-c1", "mlp", 8).chunks == 1
  assert report._members_kind("vmap-scan-c2") == "chunk"   # pylint: disable=protected-access
  assert report._members_kind("vmap-scan-g2") == "vmap"   # pylint: disable=protected-access
  assert training.parse_strategy("auto-g1-fused", "mlp", 256) == dataclasses.replace(
      training.train.auto_strategy("mlp", 256), groups=1, fused_dots=True)
  with pytest.raises(ValueError, match="Bad strategy name"):
    training.parse_strategy("fast", "mlp", 8)


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


def test_step_dots_are_the_hand_counted_products_and_run_alone():
  from benchmarks import step_dots  # pylint: disable=g-import-not-at-top
  b, d, k, c = 8, 5, 4, 3
  rng = np.random.default_rng(0)
  x, w1, w2 = (rng.normal(size=s).astype(np.float32) for s in ((b, d), (d, k), (k, c)))
  loss = lambda w1, w2, x: jnp.sum(jax.nn.relu(x @ w1) @ w2)
  dots = step_dots.step_dots(jax.grad(loss, argnums=(0, 1)), w1, w2, x)
  # Forward x@w1, h@w2; backward g@w2^T, h^T@g, x^T@dh.
  assert len(dots) == 5
  assert sum(dot.flops for dot in dots) == 4 * b * d * k + 6 * b * k * c
  run, operands = step_dots.dots_only(dots, members=2, steps=1)
  got = np.asarray(run(jnp.zeros((2,), jnp.float32)))
  want = [1e-30 * sum(float(np.sum(np.asarray(dot(lhs[m], rhs[m]), np.float64)))
                      for dot, (lhs, rhs) in zip(dots, operands)) for m in range(2)]
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_dot_gemm_shapes_are_hand_counted_and_match_flops():
  from benchmarks import step_dots  # pylint: disable=g-import-not-at-top
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  batched = step_dots.Dot(spec(3, 5, 4), spec(3, 4, 6), (((2,), (1,)), ((0,), (0,))), None,
                          None)
  # A weight gradient x^T @ g: the batch axis 8 is contracted.
  weight_grad = step_dots.Dot(spec(8, 5), spec(8, 7), (((0,), (0,)), ((), ())), None, None)
  assert batched.gemm_shape == (3, 5, 4, 6) and weight_grad.gemm_shape == (1, 5, 8, 7)
  for dot in (batched, weight_grad):
    assert dot.flops == 2 * np.prod(dot.gemm_shape)


def test_blas_dots_compute_every_members_products():
  from benchmarks import step_dots  # pylint: disable=g-import-not-at-top
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  dots = [step_dots.Dot(spec(3, 5, 4), spec(3, 4, 6), (((2,), (1,)), ((0,), (0,))), None, None),
          step_dots.Dot(spec(8, 5), spec(8, 7), (((0,), (0,)), ((), ())), None, None)]
  run, operands = step_dots.blas_dots(dots, members=5, steps=2, threads=2)
  for _, _, out in operands:
    out.fill(np.nan)
  assert run("carry") == "carry"
  for dot, (lhs, rhs, out) in zip(dots, operands):
    batch, m, k, n = dot.gemm_shape
    assert lhs.shape == (5 * batch, m, k) and out.shape == (5 * batch, m, n)
    # Both threads' members are done: no row keeps its NaN.
    np.testing.assert_allclose(out, np.matmul(lhs, rhs), rtol=1e-5)
  with pytest.raises(ValueError, match="float32 products only.*bfloat16"):
    step_dots.blas_dots([step_dots.Dot(jax.ShapeDtypeStruct((2, 2), jnp.bfloat16),
                                       jax.ShapeDtypeStruct((2, 2), jnp.bfloat16),
                                       (((1,), (0,)), ((), ())), None, None)], 1, 1)


def test_ceilings_are_told_from_strategies():
  assert all(map(report.is_ceiling, ["dots-only", "dots-only-c2", "dots-only-c12", "dots-blas"]))
  assert not any(map(report.is_ceiling, ["vmap-scan", "dots-only-g2", "auto", "dots-blas-c2"]))


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


def test_compile_profile_counts_programs_by_name_and_caller():
  from benchmarks import compile_profile  # pylint: disable=g-import-not-at-top
  from unlearn_jax import compile_cache  # pylint: disable=g-import-not-at-top
  compile_cache.cpu_options()   # its one-off probe of the options is not the test's program
  profile = compile_profile.CompileProfile()
  triple = compile_cache.jit(lambda x: x * 3 + 1)   # the caller is this file, not the wrapper
  with profile.installed():
    for n in (5, 5, 7):   # two shapes: two programs
      triple(np.arange(n, dtype=np.float32))
  ours = {k: e for k, e in profile.entries.items() if k[0] == "<lambda>"}
  (name, where), entry = next(iter(ours.items()))
  assert len(ours) == 1 and where.startswith("tests/test_benchmarks.py:")
  assert entry.programs == 2 and entry.compile_s > 0 and entry.lower_s > 0
  assert "| 2 |" in profile.table() and where in profile.table()
  triple(np.arange(9, dtype=np.float32))   # uninstalled: no longer counted
  assert entry.programs == 2


def test_side_by_side_programs_give_bitwise_the_same_models(capsys):
  from benchmarks import side_by_side  # pylint: disable=g-import-not-at-top
  r = side_by_side.case(width=4, members=2, epochs=1)
  assert r["bitwise_equal"] is True
  assert r["sequential_s"] > 0 and r["side_by_side_s"] > 0
  side_by_side.main(["--cases=4x2", "--epochs=1"])
  assert "| 4 | 2 |" in capsys.readouterr().out


def test_compile_options_compare_compile_time_and_bits_against_the_default(capsys):
  """Level 0 does not contract multiply-adds, so its models differ from the default's in the last
  bits: the comparison sees that. An option XLA does not know is reported, not fatal."""
  from benchmarks import compile_options  # pylint: disable=g-import-not-at-top
  compile_options.main(["--widths=4", "--members=2", "--rounds=1", "--run_calls=2",
                        '--sets={"level 0": {"xla_backend_optimization_level": 0}, '
                        '"bogus": {"xla_no_such_option": true}}'])
  rows = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
  by_name = {r["name"]: r for r in rows}
  assert set(by_name) == {"default", "level 0", "bogus"}
  assert by_name["default"]["bitwise"] == "yes" and float(by_name["default"]["compile"]) > 0
  assert float(by_name["level 0"]["run"]) > 0 and by_name["bogus"]["run"] == "-"
  assert by_name["level 0"]["bitwise"] == "**no**"
  assert by_name["bogus"]["bitwise"] == "-" and "xla_no_such_option" in by_name["bogus"]["compile"]
  with pytest.raises(SystemExit):
    compile_options.main(["--reference=nameless"])


def test_machine_line_names_the_xla_flags_of_a_run():
  doc = {"machine": {"backend": "cpu", "cpu_model": "X", "cpu_count": 2, "jax_version": "0",
                     "peak_flops": 1e11, "peak_assumption": "a guess"},
         "settings": {"quick": False, "xla_flags": "--xla_cpu_use_fusion_emitters=true"},
         "created": "now"}
  assert "XLA_FLAGS=--xla_cpu_use_fusion_emitters=true" in report.machine_line(doc)
  doc["settings"]["xla_flags"] = ""
  assert "XLA_FLAGS" not in report.machine_line(doc)


def test_full_cpu_plan_has_the_product_rows_only_where_they_can_be_built(monkeypatch):
  mlp_strategies = lambda: next(c for c in run.plan(False, "cpu")["train"]
                                if c["workload"].model == "mlp")["strategies"]
  monkeypatch.setattr(run, "products_reason", lambda: None)
  assert {"vmap-scan-c2-blas", "vmap-scan-c2-nodots"} <= set(mlp_strategies())
  monkeypatch.setattr(run, "products_reason", lambda: "no C++ compiler")
  assert not any(report.products_variant(s)[1] for s in mlp_strategies())
