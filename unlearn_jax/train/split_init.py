"""Member initialisation in two compiled programs on XLA:CPU, bit for bit the one-program init.

XLA:CPU compiles threefry random bits slowly with LLVM optimisations on, and fast at
optimisation level 0 (BUILD.md, "How the sweep is fast", has the figures). Random bits are
integer arithmetic, so they are the same at every optimisation level, but the floating-point
transforms of them are not (level 0 does not contract multiply-adds into FMAs, which changes
last bits). So the init runs as two programs: one compiled at level 0 draws every random array
the init consumes (its jaxpr up to where values leave the typed-key world), and one compiled as
usual replays the same jaxpr from those arrays, computing the floats exactly as the single
program does. Bit-for-bit equality with the one-member init is tested (tests/test_train.py).
Costs a transient copy of the random bits (one u32 per parameter).

This reads traced programs through `jax.extend.core` and binds primitives itself; an init whose
program it cannot cut (`splittable` is False) runs as one program instead.
"""
from __future__ import annotations

import functools

import jax
from jax.extend import core as jex_core

from unlearn_jax import compile_cache


def split_compile() -> bool:
  """Whether to split (XLA:CPU only: other backends compile random bits quickly)."""
  return jax.default_backend() == "cpu"


_INLINED = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call")


def split_initializer(jaxprs, finish):
  """`fn(seeds_by_width, sample_x, *finish_args)`: draw (compiled at level 0), then replay
  (compiled as usual) and `finish(groups, *finish_args)` in the same program."""
  def draw_one(closed, seed, sample_x):
    random_values = []
    _eval_split(closed.jaxpr, closed.consts, [seed, sample_x], random_values)
    return random_values

  def draw(seeds_by_width, sample_x):
    return [jax.vmap(functools.partial(draw_one, closed), in_axes=(0, None))(seeds, sample_x)
            for (closed, _), seeds in zip(jaxprs, seeds_by_width)]

  def replay(drawn, seeds_by_width, sample_x, *finish_args):
    groups = []
    for (closed, shapes), random_values, seeds in zip(jaxprs, drawn, seeds_by_width):
      one = lambda r, s, closed=closed, shapes=shapes: jax.tree.unflatten(
          jax.tree.structure(shapes),
          _eval_split(closed.jaxpr, closed.consts, [s, sample_x], iter(r)))
      groups.append(jax.vmap(one)(random_values, seeds))
    return finish(groups, *finish_args)

  draw, replay = compile_cache.exact_jit(draw), compile_cache.jit(replay)
  return lambda seeds, sample_x, *finish_args: replay(draw(seeds, sample_x), seeds, sample_x,
                                                      *finish_args)


def _is_key(atom) -> bool:
  dtype = getattr(atom.aval, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def sub_jaxprs(params) -> list:
  """The jaxprs an equation's params hold (call, control-flow and custom-derivative bodies)."""
  found = []
  for value in params.values():
    for v in (value if isinstance(value, (tuple, list)) else (value,)):
      if isinstance(v, jex_core.ClosedJaxpr):
        found.append(v.jaxpr)
      elif isinstance(v, jex_core.Jaxpr):
        found.append(v)
  return found


def _uses_keys(jaxpr) -> bool:
  return any(any(map(_is_key, e.invars + e.outvars)) or any(map(_uses_keys, sub_jaxprs(e.params)))
             for e in jaxpr.eqns)


def splittable(jaxpr) -> bool:
  """Whether `_eval_split` can cut `jaxpr`: keys only inside inlinable calls, and no equation
  that makes keys also makes other values."""
  for e in jaxpr.eqns:
    subs = sub_jaxprs(e.params)
    if any(map(_uses_keys, subs)):
      if e.primitive.name not in _INLINED or len(subs) != 1 or not splittable(subs[0]):
        return False
    elif any(map(_is_key, e.outvars)) and not all(map(_is_key, e.outvars)):
      return False
  return not any(map(_is_key, jaxpr.outvars))


def _eval_split(jaxpr, consts, args, random_values):
  """Evaluates `jaxpr`, cut where values leave the key world (e.g. `random_bits`).

  random_values: a list to append those values to (draw: everything is computed; the caller
    returns only the list, so the rest is dead code), or an iterator that supplies them in the
    same order (replay: equations that make keys are skipped).
  """
  replay = not isinstance(random_values, list)
  env = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  read = lambda v: v.val if isinstance(v, jex_core.Literal) else env[v]
  for e in jaxpr.eqns:
    subs = sub_jaxprs(e.params)
    keys_in = any(_is_key(v) for v in e.invars)
    if any(map(_uses_keys, subs)):
      sub = e.params.get("jaxpr", e.params.get("call_jaxpr"))
      sub_consts = getattr(sub, "consts", ())
      outs = _eval_split(getattr(sub, "jaxpr", sub), sub_consts, [read(v) for v in e.invars],
                         random_values)
    elif replay and any(map(_is_key, e.outvars)):
      outs = [None] * len(e.outvars)   # keys are not needed any more
    elif replay and keys_in:
      outs = [next(random_values) for _ in e.outvars]
    else:
      outs = _bind(e, [read(v) for v in e.invars])
      if keys_in and not any(map(_is_key, e.outvars)):
        random_values.extend(outs)
    env.update(zip(e.outvars, outs))
  return [read(v) for v in jaxpr.outvars]


def _bind(eqn, invals) -> list:
  params = eqn.primitive.get_bind_params(eqn.params)
  subfuns = ()
  if isinstance(params, tuple):   # older JAX: (subfuns, params)
    subfuns, params = params
  with eqn.ctx.manager:
    outs = eqn.primitive.bind(*subfuns, *invals, **params)
  return list(outs) if eqn.primitive.multiple_results else [outs]
