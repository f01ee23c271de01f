"""Timing compiled JAX work: first call (compile + run) vs steady state, and XLA FLOP counts.

JAX dispatches asynchronously, so every timed call ends in `jax.block_until_ready`; otherwise
we would time the dispatch, not the work. The first call of a freshly built jitted function
compiles it; `compile_s = first_s - steady_s` is the compile (and tracing) cost, measured the
way a user pays it rather than by calling the compiler separately.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Optional

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
  first_s: float    # first call: trace + compile + run
  steady_s: float   # median of the later calls
  repeats: int      # number of later calls

  @property
  def compile_s(self) -> float:
    return max(self.first_s - self.steady_s, 0.0)

  def as_dict(self) -> dict:
    return {"first_call_s": self.first_s, "steady_s": self.steady_s,
            "compile_s": self.compile_s, "repeats": self.repeats}


def measure(fn: Callable[[Any], Any], carry: Any, *, min_repeats: int = 2, max_repeats: int = 10,
            min_time_s: float = 1.0) -> tuple[Timing, Any]:
  """Times `carry = fn(carry)`: one first call, then repeats until min_time_s has passed.

  Feeding the output back in keeps the measured work identical to a training loop (each call
  starts from the state the previous one produced) and defeats any caching of results.

  Returns:
    (Timing, the final carry).
  """
  start = time.perf_counter()
  carry = jax.block_until_ready(fn(carry))
  first = time.perf_counter() - start
  times: list[float] = []
  while len(times) < min_repeats or (sum(times) < min_time_s and len(times) < max_repeats):
    start = time.perf_counter()
    carry = jax.block_until_ready(fn(carry))
    times.append(time.perf_counter() - start)
  return Timing(first, statistics.median(times), len(times)), carry


def flops(fn: Callable, *args) -> Optional[float]:
  """The model FLOPs of one call of `jax.jit(fn)(*args)` by XLA's cost analysis, or None.

  Analyses the lowered, unoptimised program (`jax.jit(fn).lower(...).cost_analysis()`), not the
  compiled one: after compilation XLA:GPU has turned convolutions into cuDNN custom calls, which
  its cost analysis counts as zero (on an H100 the compiled analysis of a ResNet-18 step gave
  0.4% of its FLOPs). The lowered count is the usual "model FLOPs" of utilisation figures, the
  same on every backend, and needs no compile; on CPU the compiled count is 0-25% higher
  (rewritten convolutions and fusions add elementwise work). PJRT plugin backends (CUDA) cannot
  analyse a lowered program, so there the same program is lowered for the host CPU instead.
  Count single-model, single-step functions: XLA counts a `while`/`scan` body once, not once
  per iteration.
  """
  count = _lowered_flops(fn, args)
  if count is None and jax.default_backend() != "cpu":
    try:
      cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    except RuntimeError:
      return None   # JAX_PLATFORMS leaves out the CPU
    specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu), args)
    count = _lowered_flops(fn, specs)
  return count


def _lowered_flops(fn: Callable, args) -> Optional[float]:
  try:
    analysis = jax.jit(fn).lower(*args).cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None   # not implemented on this backend; a missing figure is fine
  if isinstance(analysis, (list, tuple)):  # older JAX returned one dict per program
    analysis = analysis[0] if analysis else {}
  value = (analysis or {}).get("flops")
  return float(value) if value and value > 0 else None


def flop_rates(flop_count: Optional[float], seconds: float, peak: Optional[float]) -> dict:
  """Achieved FLOP/s of `flop_count` FLOPs done in `seconds`, and its fraction of `peak`."""
  out: dict = {"flops_per_s": None, "fraction_of_peak": None}
  if flop_count and seconds > 0:
    out["flops_per_s"] = flop_count / seconds
    if peak:
      out["fraction_of_peak"] = out["flops_per_s"] / peak
  return out
