"""benchmarks/step_profile.py: HLO parsing, own times of nested trace events, and a real run."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # benchmarks/ is not an installed package

from benchmarks import blas_call, step_profile  # noqa: E402

HLO = """HloModule jit_scan_steps

%fused_computation.3 (param_0: f32[8,128,64], param_1: f32[8,64,64]) -> f32[8,128,64] {
  %param_0 = f32[8,128,64]{2,1,0} parameter(0)
  %param_1 = f32[8,64,64]{2,1,0} parameter(1)
  ROOT %dot.1 = f32[8,128,64]{2,1,0} dot(%param_0, %param_1), lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={1}
}

ENTRY %main.26 (x: f32[8,128,40], g: f32[8,128,64], w: f32[8,64,64]) -> (f32[8,40,64], f32[8,128,64]) {
  %x = f32[8,128,40]{2,1,0} parameter(0)
  %g = f32[8,128,64]{2,1,0} parameter(1)
  %w = f32[8,64,64]{2,1,0} parameter(2)
  %dot.9 = f32[8,40,64]{2,1,0} dot(%x, %g), lhs_batch_dims={0}, lhs_contracting_dims={1}, rhs_batch_dims={0}, rhs_contracting_dims={1}
  %ynn_fusion.3 = f32[8,128,64]{2,1,0} fusion(%g, %w), kind=kCustom, calls=%fused_computation.3
  %copy.35 = f32[8,64,64]{2,1,0} copy(%w)
  %ffi_call.37 = f32[8,40,64]{2,1,0} custom-call(%x, %g), custom_call_target="unlearn_jax_benchmarks_batched_sgemm", api_version=API_VERSION_TYPED_FFI, backend_config={compute = true, trans_a = true, trans_b = false}
  %ffi_call.38 = f32[8,40,64]{2,1,0} custom-call(%x, %g), custom_call_target="unlearn_jax_benchmarks_batched_sgemm", api_version=API_VERSION_TYPED_FFI, backend_config={compute = false, trans_a = true, trans_b = false}
  ROOT %tuple = (f32[8,40,64]{2,1,0}, f32[8,128,64]{2,1,0}) tuple(%dot.9, %ynn_fusion.3)
}
"""


def test_parse_hlo_counts_product_flops_of_dots_and_fusions():
  ops = step_profile.parse_hlo(HLO)
  # Hand counts: 2 x output elements x contracted length.
  assert ops["dot.9"].flops == 2 * (8 * 40 * 64) * 128
  assert ops["ynn_fusion.3"].flops == 2 * (8 * 128 * 64) * 64
  assert ops["ynn_fusion.3"].kind == "YNNPACK fusion" and ops["ynn_fusion.3"].is_product
  assert ops["copy.35"].flops == 0 and not ops["copy.35"].is_product
  assert ops["tuple"].opcode == "tuple"
  # The '-blas' custom call x^T @ g is the same product as dot.9; its zero-fill twin does none.
  assert ops["ffi_call.37"].flops == ops["dot.9"].flops and ops["ffi_call.38"].flops == 0
  assert step_profile.BLAS_TARGET == blas_call.TARGET


def test_self_times_take_nested_events_out():
  event = lambda name, ts, dur, tid=1: {"ph": "X", "name": name, "ts": ts, "dur": dur,
                                        "pid": 1, "tid": tid}
  events = [event("while", 0, 100), event("dot.9", 10, 30), event("copy.35", 50, 20),
            event("dot.9", 5, 40, tid=2), {"ph": "i", "name": "marker", "ts": 3}]
  own = step_profile.self_times(events)
  assert sorted(own["dot.9"]) == [30, 40] and own["copy.35"] == [20]
  assert own["while"] == [50]          # 100 less its two children
  assert "marker" not in own


def test_profile_rows_rate_and_share():
  ops = step_profile.parse_hlo(HLO)
  rows = step_profile.profile_rows(ops, {"dot.9": [100.0, 100.0], "copy.35": [50.0, 50.0],
                                         "not_in_program": [1e6]}, calls=2)
  by_op = {r["op"]: r for r in rows}
  assert set(by_op) == {"dot.9", "copy.35"} and rows[0]["op"] == "dot.9"
  assert by_op["dot.9"]["ms_per_call"] == pytest.approx(0.1)
  assert by_op["dot.9"]["flops_per_s"] == pytest.approx(ops["dot.9"].flops / 100e-6)
  assert by_op["dot.9"]["share"] == pytest.approx(2 / 3) and by_op["copy.35"]["flops_per_s"] is None


def test_a_real_profile_names_the_steps_products(tmp_path):
  out = tmp_path / "profile.md"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.step_profile", "--width=8", "--members=2",
       "--batch-size=32", "--num-samples=400", "--calls=2", "--strategy=vmap-scan",
       f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in open(tmp_path / "profile.jsonl")]
  products = [r for r in rows if r["product"]]
  # The MLP's three layers: 3 forward products and at least 5 backward ones, each with a rate.
  assert len(products) >= 6, rows
  assert all(r["flops_per_s"] > 0 and r["executions_per_call"] > 0 for r in products)
  assert sum(r["share"] for r in rows) == pytest.approx(1.0)
  assert "Products:" in out.read_text()
