"""One in-process cache of compiled (jitted) functions, keyed by what determines the program,
and the project's `jit`: XLA:CPU compile options that shorten a cold sweep without moving a bit.

A sweep calls the same step, initialiser or inference function for many stages and methods;
building (and tracing) it once per key is what keeps a second call from compiling anything.
Keys hold hashable objects only: Flax modules, methods, strategies, shapes, flags.

    fn = compile_cache.cached(("predict", model, unbatched), lambda: compile_cache.jit(...))
"""
from __future__ import annotations

import functools
import logging
import os
import re
import threading
from typing import Callable, Hashable, TypeVar

import jax

T = TypeVar("T")

# XLA:CPU compile options of every program the project jits (`jit` below). The older loop
# emitters compile a program in much less time than the fusion emitters and run it a little
# slower, a net gain for a cold sweep (BUILD.md, "How the sweep is fast"). They gave bitwise the
# same results at the default optimisation level in every case measured: MNIST-1D and synthetic
# MLPs of widths 4-256, on AVX2 and AVX-512 hosts, README's default
# (benchmarks/results/cpu-xeon-compile-options.md). Per program, not through XLA_FLAGS:
# eager operations keep XLA's default, which the committed decision planes need. At level 0 (the
# tests' setting) the emitters round differently in the last bit. Clear the dict before the
# first compile, or name the option in XLA_FLAGS, to get XLA's own default.
CPU_OPTIONS: dict[str, object] = {"xla_cpu_use_fusion_emitters": False}

# XLA:CPU at optimisation level 0: compiles threefry, sorts and gathers faster. Only for
# programs whose results cannot depend on it (no floating-point arithmetic: level 0 does not
# contract multiply-adds into FMAs).
FAST_COMPILE = {"xla_backend_optimization_level": 0}

_CACHE: dict[Hashable, object] = {}
_LOCK = threading.RLock()   # stages may run side by side (experiments/stage_pool.py)
_SUPPORTED: dict[str, bool] = {}


def cached(key: Hashable, build: Callable[[], T]) -> T:
  """`build()` the first time `key` is seen, the same object every later time."""
  with _LOCK:
    if key not in _CACHE:
      _CACHE[key] = build()
    return _CACHE[key]  # type: ignore[return-value]


def clear() -> None:
  """Forgets every cached function (tests that count compilations start from here)."""
  _CACHE.clear()


def _supported(name: str, value) -> bool:
  """Whether this XLA knows the option (a release may retire it): one tiny compile, once."""
  if name not in _SUPPORTED:
    try:
      jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(1.0).compile()
      _SUPPORTED[name] = True
    except Exception as e:  # pylint: disable=broad-except  # XLA's error type varies by release
      logging.warning("XLA does not take the compile option %s=%r (%s); compiling with its "
                      "default instead.", name, value, str(e).splitlines()[0][:200])
      _SUPPORTED[name] = False
  return _SUPPORTED[name]


def cpu_options(extra: dict | None = None) -> dict | None:
  """The compile options of a project program on this backend: `CPU_OPTIONS` (less what
  XLA_FLAGS sets itself or this XLA does not know) and `extra`, on CPU; None elsewhere."""
  if jax.default_backend() != "cpu":
    return None
  flags = os.environ.get("XLA_FLAGS", "")
  options = {k: v for k, v in CPU_OPTIONS.items()
             if not re.search(rf"--{k}(=|\s|$)", flags) and _supported(k, v)}
  return {**options, **(extra or {})} or None


class _LazyJit:
  """`jax.jit(fun, compiler_options=cpu_options(extra))`, built at its first use (the backend
  is known only once something runs); `.lower` and other attributes reach the jitted function."""

  def __init__(self, fun: Callable, extra: dict | None, jit_kwargs: dict):
    functools.update_wrapper(self, fun)
    self._args = (fun, extra, jit_kwargs)
    self._jitted = None

  def _built(self):
    if self._jitted is None:
      with _LOCK:
        if self._jitted is None:
          fun, extra, jit_kwargs = self._args
          self._jitted = jax.jit(fun, compiler_options=cpu_options(extra), **jit_kwargs)
    return self._jitted

  def __call__(self, *args, **kwargs):
    return self._built()(*args, **kwargs)

  def __getattr__(self, name):
    if name.startswith("__") or name in ("_args", "_jitted"):
      raise AttributeError(name)
    return getattr(self._built(), name)


def jit(fun: Callable | None = None, *, options: dict | None = None, **jit_kwargs):
  """`jax.jit` with the project's XLA:CPU options (`CPU_OPTIONS`, then `options`) on CPU;
  plain `jax.jit` elsewhere. Usable as `@jit`, `@jit(static_argnums=...)` or `jit(fn, ...)`."""
  if fun is None:
    return functools.partial(jit, options=options, **jit_kwargs)
  return _LazyJit(fun, options, jit_kwargs)


def exact_jit(fun: Callable | None = None, **jit_kwargs):
  """`jit` for programs without floating-point arithmetic (random bits and keys, permutations,
  gathers, finiteness checks, integer counts): on XLA:CPU compiled at optimisation level 0,
  since such results are the same at every level.

  A sweep compiles hundreds of these small programs, one per member count; at level 0 they
  compile in about half the time and run a little slower, which matters once per epoch at most.
  """
  return jit(fun, options=FAST_COMPILE, **jit_kwargs)
