"""A training step's dots alone: the ceiling XLA's dot kernels put on the step's FLOP/s.

`step_dots(step_fn, *one_member_args)` traces one member's step and collects every
`dot_general` it does (forward and backward, with their shapes, dtypes and dimension numbers);
`dots_only(dots, S, T)` builds a program that runs just those dots for T steps, vmapped over S
members and scanned like the real epoch (benchmarks/training.py: the `dots-only` rows; with
`-cN` in N member chunks side by side, as the step's own chunks run).
Its FLOP/s is what the same matrix products reach without the step's elementwise work,
gathers and optimizer update, to be read next to the step's own FLOP/s and the machine's
2048^2 matmul (benchmarks/results/cpu-amd-epyc-zen5.md).
`blas_dots(dots, S, T)` does the same products with numpy's BLAS instead of XLA (the
`dots-blas` rows): a second library's kernels on the same shapes, each product in its best
layout, which tells whether a FLOP/s target is out of reach of XLA's kernels only or of any
kernel (benchmarks/results/cpu-xeon-model167.md).

Each step's left operands are shifted by a scalar carried from the previous step's products,
so XLA cannot hoist the products out of the loop; the shift and the sums that feed it add
about one operation per operand and output element (under 2% of the FLOPs at width 64).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import threadpoolctl

from unlearn_jax.train import split_init


@dataclasses.dataclass(frozen=True)
class Dot:
  lhs: jax.ShapeDtypeStruct
  rhs: jax.ShapeDtypeStruct
  dimension_numbers: Any
  precision: Any
  preferred_element_type: Any

  @property
  def flops(self) -> int:
    """2 x output elements x contracted length."""
    (lhs_contract, _), _ = self.dimension_numbers
    out = jax.eval_shape(self, self.lhs, self.rhs)
    contracted = math.prod(self.lhs.shape[axis] for axis in lhs_contract)
    return 2 * math.prod(out.shape) * contracted

  @property
  def gemm_shape(self) -> tuple[int, int, int, int]:
    """(batch, m, k, n): the product as `batch` (m x k) @ (k x n) matrix products."""
    (lhs_contract, _), (lhs_batch, _) = self.dimension_numbers
    batch = math.prod(self.lhs.shape[axis] for axis in lhs_batch)
    k = math.prod(self.lhs.shape[axis] for axis in lhs_contract)
    m = math.prod(self.lhs.shape) // (batch * k)
    n = math.prod(self.rhs.shape) // (batch * k)
    return batch, m, k, n

  def __call__(self, lhs, rhs):
    return jax.lax.dot_general(lhs, rhs, self.dimension_numbers, self.precision,
                               preferred_element_type=self.preferred_element_type)


def step_dots(fn: Callable, *args) -> list[Dot]:
  """Every dot_general in the program of `fn(*args)`, in program order (one inside a loop body
  counts once: meant for single steps)."""
  closed = jax.make_jaxpr(fn)(*args)
  found: list[Dot] = []
  _collect(closed.jaxpr, found)
  return found


def _collect(jaxpr, found: list[Dot]) -> None:
  for e in jaxpr.eqns:
    if e.primitive.name == "dot_general":
      lhs, rhs = (jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in e.invars)
      found.append(Dot(lhs, rhs, e.params["dimension_numbers"], e.params.get("precision"),
                       e.params.get("preferred_element_type")))
    for sub in split_init.sub_jaxprs(e.params):
      _collect(sub, found)


def one_step_of_dots(dots: list[Dot]) -> Callable:
  """`step(shift, operands) -> next shift`: one member's dots once, lhs shifted by `shift`."""
  def step(shift, operands):
    total = jnp.zeros((), jnp.float32)
    for dot, (lhs, rhs) in zip(dots, operands):
      total = total + jnp.sum(dot(lhs + shift.astype(lhs.dtype), rhs), dtype=jnp.float32)
    return total * 1e-30
  return step


def dots_only(dots: list[Dot], members: int, steps: int, seed: int = 0):
  """(fn, operands): `fn(shifts) -> shifts` runs `steps` steps of `dots` for each of `members`
  members in one compiled program; operands are random, member-stacked."""
  keys = jax.random.split(jax.random.key(seed), 2 * len(dots))
  normal = lambda k, s: jax.random.normal(k, (members, *s.shape), jnp.float32).astype(s.dtype)
  operands = [(normal(keys[2 * i], d.lhs), normal(keys[2 * i + 1], d.rhs))
              for i, d in enumerate(dots)]
  step = one_step_of_dots(dots)

  def member(shift, member_operands):
    return jax.lax.scan(lambda s, _: (step(s, member_operands), None), shift, None,
                        length=steps)[0]

  run = jax.jit(jax.vmap(member))
  return (lambda shifts: run(shifts, operands)), operands


def blas_dots(dots: list[Dot], members: int, steps: int, threads: int | None = None,
              seed: int = 0):
  """(fn, operands): `fn(carry) -> carry` runs `steps` steps of `dots` for each of `members`
  members with numpy's BLAS (`np.matmul` on (batch, m, k) @ (batch, k, n) stacks, operands laid
  out that way in advance); operands are random float32, (members * batch, ...) stacked.

  The members are split over `threads` host threads (default: one per core), each calling BLAS
  with one thread of its own: for the width-64 MLP's products on 2 Xeon cores that gave 191-208
  GFLOP/s, against 102-104 from one thread calling a 1- or 2-thread BLAS.
  """
  if any(jnp.dtype(d.lhs.dtype) != jnp.float32 for d in dots):
    raise ValueError("blas_dots times float32 products only; got "
                     f"{sorted({str(d.lhs.dtype) for d in dots})}.")
  rng = np.random.default_rng(seed)
  operands = []
  for dot in dots:
    batch, m, k, n = dot.gemm_shape
    operands.append((rng.standard_normal((members * batch, m, k), np.float32),
                     rng.standard_normal((members * batch, k, n), np.float32),
                     np.empty((members * batch, m, n), np.float32)))
  threads = max(1, min(threads or os.cpu_count() or 1, members))
  # Each thread's slices of every product, made once: the timed loop only multiplies.
  parts = []
  for t in range(threads):
    lo, hi = members * t // threads, members * (t + 1) // threads
    rows = [slice(lo * d.gemm_shape[0], hi * d.gemm_shape[0]) for d in dots]
    parts.append([(lhs[r], rhs[r], out[r]) for r, (lhs, rhs, out) in zip(rows, operands)])

  def part(products):
    for _ in range(steps):
      for lhs, rhs, out in products:
        np.matmul(lhs, rhs, out=out)

  # Threads made once too (a pool per call cost 0.3 ms, 2% of a width-64 call); they idle
  # between calls.
  pool = concurrent.futures.ThreadPoolExecutor(threads, "blas_dots")

  def run(carry):
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
      list(pool.map(part, parts))
    return carry

  return run, operands
