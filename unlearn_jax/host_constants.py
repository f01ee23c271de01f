"""A program's input-independent outputs made by numpy, the rest compiled (XLA:CPU only).

An initialiser returns many arrays that do not depend on its inputs: zero biases, zero momentum
buffers, all-ones masks, step counters at 0. XLA:CPU compiles them as kernels of their own,
about 5-10 ms of LLVM each: 14 such outputs added 0.07-0.13 s to a 0.07 s compile. The member
initialiser of 16 width-64 MLPs had 5 fusions of real work and 18 instructions that only made
constants (11 broadcasts, each its own LLVM module, and 7 copies); through `jit` below it has
the 5 fusions alone. numpy makes the constants in microseconds and bit for bit,
because they are exact: literals broadcast, padded, joined, reshaped, transposed or converted
losslessly.

`jit(fun)` traces `fun` once per argument signature, evaluates in numpy the outputs that are
such constants (`_HOST_PRIMITIVES`; any other operation keeps an output compiled), compiles a
program for the others, and puts each call's constants on the device as fresh arrays (a caller
may donate them). Outputs with a weak type stay compiled, so every output keeps its type.
"""
from __future__ import annotations

import threading
from typing import Callable

import jax
import numpy as np
from jax.extend import core as jex_core

from unlearn_jax import compile_cache


def jit(fun: Callable) -> Callable:
  """`compile_cache.jit(fun)` whose input-independent outputs come from numpy on CPU; `fun`
  takes positional pytree arguments."""
  return _HostConstantsJit(fun)


class _HostConstantsJit:

  def __init__(self, fun: Callable):
    self._fun = fun
    self._whole = compile_cache.jit(fun)   # other backends, and programs without constants
    self._programs: dict = {}
    self._lock = threading.Lock()

  def __call__(self, *args):
    if jax.default_backend() != "cpu":
      return self._whole(*args)
    flat, tree = jax.tree.flatten(args)
    key = (tree, tuple(jax.typeof(x) for x in flat))
    with self._lock:
      if key not in self._programs:
        self._programs[key] = self._build(flat, tree)
    return self._programs[key](flat)

  def _build(self, flat, tree):
    closed, out_shapes = jax.make_jaxpr(
        lambda *leaves: self._fun(*jax.tree.unflatten(tree, leaves)), return_shape=True)(*flat)
    out_tree = jax.tree.structure(out_shapes)
    jaxpr = closed.jaxpr
    host = _host_values(jaxpr, closed.consts)
    constant = {i: host[v] for i, v in enumerate(jaxpr.outvars)
                if isinstance(v, jex_core.Var) and v in host and not v.aval.weak_type}
    if not constant:
      return lambda leaves: self._whole(*jax.tree.unflatten(tree, leaves))
    computed = [i for i in range(len(jaxpr.outvars)) if i not in constant]
    info = jaxpr.debug_info
    paths = info.result_paths
    pruned = jaxpr.replace(
        outvars=[jaxpr.outvars[i] for i in computed],
        debug_info=info._replace(result_paths=paths if paths is None else tuple(
            paths[i] for i in computed)))
    evaluate = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(pruned, closed.consts))

    def program_fn(*leaves):
      return evaluate(*leaves)
    program_fn.__name__ = getattr(self._fun, "__name__", "program")   # names it in XLA's logs
    program = compile_cache.jit(program_fn)

    def run(leaves):
      outs = dict(zip(computed, program(*leaves) if computed else ()))
      # Fresh copies every call: a device array may share a numpy buffer on CPU, and a caller
      # may donate it.
      outs.update(zip(constant, jax.device_put([value.copy() for value in constant.values()])))
      return jax.tree.unflatten(out_tree, [outs[i] for i in range(len(jaxpr.outvars))])
    return run


def _literal(atom) -> np.ndarray:
  return np.asarray(atom.val, dtype=atom.aval.dtype)


def _host_values(jaxpr, consts, ins=()) -> dict:
  """{var: numpy value} for every variable of `jaxpr` that is an exact constant, given the
  values of its first inputs (`ins`)."""
  values = {v: np.asarray(c) for v, c in zip(jaxpr.constvars, consts)}
  values.update(zip(jaxpr.invars, ins))
  for eqn in jaxpr.eqns:
    ins = [_literal(a) if isinstance(a, jex_core.Literal) else values.get(a) for a in eqn.invars]
    if any(x is None for x in ins):
      continue
    outs = _host_eqn(eqn, ins)
    if outs is None:
      continue
    for var, out in zip(eqn.outvars, outs):
      if out.shape == var.aval.shape and out.dtype == var.aval.dtype:
        values[var] = out
  return values


def _host_eqn(eqn, ins) -> list | None:
  """The outputs of one equation in numpy, or None where it is not exact or not known here."""
  name, p = eqn.primitive.name, eqn.params
  if name in ("jit", "pjit", "closed_call"):
    sub = p.get("jaxpr", p.get("call_jaxpr"))
    inner = _host_values(sub.jaxpr, sub.consts, ins)
    outs = [inner.get(v) if isinstance(v, jex_core.Var) else _literal(v) for v in sub.jaxpr.outvars]
    return None if any(o is None for o in outs) else outs
  handler = _HOST_PRIMITIVES.get(name)
  return None if handler is None else handler(p, *ins)


def _broadcast_in_dim(p, x):
  shape = [1] * len(p["shape"])
  for i, d in enumerate(p["broadcast_dimensions"]):
    shape[d] = x.shape[i]
  return [np.broadcast_to(x.reshape(shape), p["shape"])]


def _convert(p, x):
  out = x.astype(p["new_dtype"])
  exact = np.all(np.isfinite(out)) if out.dtype.kind == "f" else True
  return [out] if exact and np.array_equal(out.astype(x.dtype), x) else None


def _pad(p, x, value):
  config = p["padding_config"]
  if any(interior or lo < 0 or hi < 0 for lo, hi, interior in config):
    return None
  return [np.pad(x, [(int(lo), int(hi)) for lo, hi, _ in config], constant_values=value)]


_HOST_PRIMITIVES = {
    "broadcast_in_dim": _broadcast_in_dim,
    "convert_element_type": _convert,
    "pad": _pad,
    "concatenate": lambda p, *xs: [np.concatenate(xs, axis=p["dimension"])],
    "reshape": lambda p, x: ([np.reshape(x, p["new_sizes"])] if p.get("dimensions") is None
                             else None),
    "squeeze": lambda p, x: [np.squeeze(x, axis=tuple(p["dimensions"]))],
    "transpose": lambda p, x: [np.transpose(x, p["permutation"])],
    "copy": lambda p, x: [np.array(x)],
    "copy_p": lambda p, x: [np.array(x)],
}
