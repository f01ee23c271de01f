"""A training step's dots alone: the ceiling XLA's dot kernels put on the step's FLOP/s.

`step_dots(step_fn, *one_member_args)` traces one member's step and collects every
`dot_general` it does (forward and backward, with their shapes, dtypes and dimension numbers);
`dots_only(dots, S, T)` builds a program that runs just those dots for T steps, vmapped over S
members and scanned like the real epoch (benchmarks/training.py: the `dots-only` rows).
Its FLOP/s is what the same matrix products reach without the step's elementwise work,
gathers and optimizer update, to be read next to the step's own FLOP/s and the machine's
2048^2 matmul (benchmarks/results/cpu-amd-epyc-zen5.md).

Each step's left operands are shifted by a scalar carried from the previous step's products,
so XLA cannot hoist the products out of the loop; the shift and the sums that feed it add
about one operation per operand and output element (under 2% of the FLOPs at width 64).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

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
