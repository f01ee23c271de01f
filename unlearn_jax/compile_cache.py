"""One in-process cache of compiled (jitted) functions, keyed by what determines the program.

A sweep calls the same step, initialiser or inference function for many stages and methods;
building (and tracing) it once per key is what keeps a second call from compiling anything.
Keys hold hashable objects only: Flax modules, methods, strategies, shapes, flags.

    fn = compile_cache.cached(("predict", model, unbatched), lambda: jax.jit(...))
"""
from __future__ import annotations

from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

_CACHE: dict[Hashable, object] = {}


def cached(key: Hashable, build: Callable[[], T]) -> T:
  """`build()` the first time `key` is seen, the same object every later time."""
  if key not in _CACHE:
    _CACHE[key] = build()
  return _CACHE[key]  # type: ignore[return-value]


def clear() -> None:
  """Forgets every cached function (tests that count compilations start from here)."""
  _CACHE.clear()
