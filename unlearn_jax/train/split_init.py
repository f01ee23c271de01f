"""Member initialisation in two compiled programs on XLA:CPU, bit for bit the one-program init.

XLA:CPU spends seconds compiling threefry random bits with LLVM optimisations on (an MLP's init
compiled in 1.3-2 s, its vmap over members in 2.6-3.3 s; at optimisation level 0 in 0.3 s).
Random bits are integer arithmetic, so they are the same at every optimisation level, but the
floating-point transforms of them are not (level 0 does not contract multiply-adds into FMAs,
which changes last bits). So the init runs as two programs: one compiled at level 0 draws every
random array the init consumes (its jaxpr up to where values leave the typed-key world), and
one compiled as usual replays the same jaxpr from those arrays, computing the floats exactly as
the single program does. Bit-for-bit equality with the one-member init is tested
(tests/test_train.py). Costs a transient copy of the random bits (one u32 per parameter).

Up to `HOST_DRAW_MAX` random numbers (an MLP of width 256: 1.3M for 16 members) the draw skips
XLA altogether: numpy hashes them (`host_threefry`, bit for bit) in less time than the level-0
program takes to compile (16 members of width 64: about 2 ms against 0.3 s).

This reads traced programs through `jax.extend.core` and binds primitives itself; an init whose
program it cannot cut (`splittable` is False) runs as one program instead.
"""
from __future__ import annotations

import functools

import jax
import numpy as np
from jax.extend import core as jex_core

from unlearn_jax import compile_cache, host_constants
from unlearn_jax.train import host_threefry

# Random numbers (members x elements) up to which numpy draws them (about 60 ns each).
HOST_DRAW_MAX = 1 << 22


def split_compile() -> bool:
  """Whether to split (XLA:CPU only: other backends compile random bits quickly)."""
  return jax.default_backend() == "cpu"


_INLINED = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call")


def split_initializer(jaxprs, finish):
  """`fn(seeds_by_width, sample_x, *finish_args)`: draw (numpy, or XLA at level 0), then replay
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

  # The replay's zero momenta, masks and step counters come from numpy (host_constants).
  draw, replay = compile_cache.exact_jit(draw), host_constants.jit(replay)
  per_member = [_host_drawable_size(closed.jaxpr) for closed, _ in jaxprs]

  def draw_anywhere(seeds_by_width, sample_x):
    sizes = [n * len(seeds) for n, seeds in zip(per_member, seeds_by_width)]
    if None in per_member or sum(sizes) > HOST_DRAW_MAX:
      return draw(seeds_by_width, sample_x)
    return [_host_draw(closed.jaxpr, closed.consts, np.asarray(seeds))
            for (closed, _), seeds in zip(jaxprs, seeds_by_width)]

  return lambda seeds, sample_x, *finish_args: replay(draw_anywhere(seeds, sample_x), seeds,
                                                      sample_x, *finish_args)


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


# Key-world primitives `_host_draw` evaluates in numpy, for the threefry2x32 implementation.
_HOST_PRIMITIVES = ("random_seed", "random_fold_in", "random_bits", "random_split", "random_wrap",
                    "random_unwrap")


def _host_drawable_size(jaxpr):
  """Random numbers per member `_host_draw` makes for `jaxpr` (whose first input is the seed),
  or None where it cannot: a key primitive it does not know, another PRNG, bits other than
  32-bit, the original (not partitionable) threefry bits, or a key computed from a value other
  than the seed and constants."""
  if not jax.config.jax_threefry_partitionable:
    return None
  return _host_size(jaxpr, [True] + [False] * (len(jaxpr.invars) - 1))[0]


def _host_size(jaxpr, known_in):
  """(random numbers or None, which outputs the host draw computes) given which inputs it has."""
  known = set(jaxpr.constvars) | {v for v, k in zip(jaxpr.invars, known_in) if k}
  is_known = lambda v: isinstance(v, jex_core.Literal) or v in known
  total = 0
  for e in jaxpr.eqns:
    subs = sub_jaxprs(e.params)
    if any(map(_uses_keys, subs)):
      inner, known_out = _host_size(subs[0], [is_known(v) for v in e.invars])
      if inner is None:
        return None, ()
      total += inner
      known.update(v for v, k in zip(e.outvars, known_out) if k)
    elif any(map(_is_key, e.invars + e.outvars)):
      if (e.primitive.name not in _HOST_PRIMITIVES or not all(map(is_known, e.invars)) or
          getattr(e.params.get("impl"), "name", "threefry2x32") != "threefry2x32" or
          e.params.get("bit_width", 32) != 32):
        return None, ()
      known.update(e.outvars)
      if not any(map(_is_key, e.outvars)):
        total += sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in e.outvars)
  return total, [is_known(v) for v in jaxpr.outvars]


class _Unknown:
  """A value the host draw does not compute (it depends on the sample input, not on keys)."""


def _host_draw(jaxpr, consts, seeds: np.ndarray) -> list:
  """`_eval_split`'s draw for a batch of seeds, in numpy: the random values of every member,
  each (members, *shape), in the order the replay consumes them. Only the key world is
  evaluated; `_host_drawable_size` says beforehand whether that is enough (else this raises)."""
  values = []
  _host_eval(jaxpr, [np.asarray(c) for c in consts],
             [seeds] + [_Unknown] * (len(jaxpr.invars) - 1), values)
  # A value drawn from a key that does not depend on the seed is the same for every member.
  return [np.ascontiguousarray(np.broadcast_to(v, (len(seeds), *aval.shape)))
          for v, aval in values]


def _host_eval(jaxpr, consts, args, values):
  env = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  read = lambda v: v.val if isinstance(v, jex_core.Literal) else env.get(v, _Unknown)
  for e in jaxpr.eqns:
    subs = sub_jaxprs(e.params)
    if any(map(_uses_keys, subs)):
      sub = e.params.get("jaxpr", e.params.get("call_jaxpr"))
      outs = _host_eval(getattr(sub, "jaxpr", sub), [np.asarray(c) for c in
                                                     getattr(sub, "consts", ())],
                        [read(v) for v in e.invars], values)
    elif any(map(_is_key, e.invars + e.outvars)):
      invals = [read(v) for v in e.invars]
      if any(x is _Unknown for x in invals):
        raise ValueError(f"host draw: {e.primitive.name} needs a value computed outside the "
                         "key world")
      outs = [_host_primitive(e.primitive.name, e.params, *invals)]
      if not any(map(_is_key, e.outvars)):
        values.append((outs[0], e.outvars[0].aval))
    else:
      outs = [_Unknown] * len(e.outvars)
    env.update(zip(e.outvars, outs))
  return [read(v) for v in jaxpr.outvars]


def _host_primitive(name, params, *args):
  """One key primitive on key data (uint32, trailing axis 2) and a leading member axis."""
  if name == "random_seed":
    return host_threefry.seed(args[0])
  if name == "random_fold_in":
    return host_threefry.fold_in(args[0], args[1])
  if name == "random_bits":
    return host_threefry.random_bits(args[0], params["shape"])
  if name == "random_split":
    return host_threefry.split(args[0], params["shape"])
  return np.asarray(args[0], np.uint32)   # random_wrap / random_unwrap: the data itself
