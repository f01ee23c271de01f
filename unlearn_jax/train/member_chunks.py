"""Running a function over the member axis in chunks of members.

Execution strategies bound how many members one compiled call sees (`Strategy.member_chunk`,
`Strategy.chunks`):
the driver's steps and member-stacked inference both slice consecutive chunks off the leading
axis of every input tree and concatenate the outputs back, here, in one place.

On CPU the chunks run side by side in threads: XLA:CPU runs a program on the thread that calls
it and uses about one core for it, so two chunks keep two cores busy (BUILD.md, "How the sweep
is fast", has the measurements). Each chunk runs the same program on the same
inputs side by side or in turn, so the results are bitwise the same.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp

from unlearn_jax import compile_cache

PyTree = Any

_POOL: list[concurrent.futures.ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()
_IN_CHUNK = threading.local()   # a chunk that maps chunks itself runs them in turn


def _chunk_pool() -> concurrent.futures.ThreadPoolExecutor:
  """The process's pool of one thread per core for member chunks, made on first use."""
  with _POOL_LOCK:
    if not _POOL:
      _POOL.append(concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, "member_chunk"))
    return _POOL[0]


def _side_by_side(num_chunks: int) -> bool:
  return (num_chunks > 1 and (os.cpu_count() or 1) > 1 and jax.default_backend() == "cpu"
          and not getattr(_IN_CHUNK, "active", False))


def _in_chunk(fn, part):
  # Computes and waits in this thread: XLA:CPU runs a program on the calling thread only when
  # its inputs are ready, else later on whichever thread makes them ready.
  _IN_CHUNK.active = True
  try:
    return jax.block_until_ready(fn(*jax.block_until_ready(part)))
  finally:
    _IN_CHUNK.active = False


@functools.partial(compile_cache.exact_jit, static_argnums=(2,))
def _take(trees, index, chunk: int) -> tuple:
  """Chunk `index`'s slice of every tree. One program for every chunk (the index is data): a
  program returning every chunk's slice at once would hold one kernel per chunk and leaf, and
  XLA:CPU maps each kernel's code into memory separately (thousands of members x leaves exhaust
  the process's memory-map limit, vm.max_map_count)."""
  return tuple(jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, index * chunk, chunk), t)
               for t in trees)


@functools.partial(compile_cache.exact_jit, static_argnums=(1,))
def _rest(trees, start: int) -> tuple:
  """The last, shorter chunk: every member from `start` on."""
  return tuple(jax.tree.map(lambda x: x[start:], t) for t in trees)


@compile_cache.exact_jit
def _join(outs: list) -> PyTree:
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)


def map_member_chunks(fn: Callable[..., PyTree], chunk: int, *trees: PyTree,
                      concatenate: Callable | None = None) -> PyTree:
  """`fn(*trees)` computed on consecutive chunks of `chunk` members (0: all at once).

  Every leaf of `trees` has the member axis first; `fn`'s outputs are joined along it on the
  device, or by `concatenate` (`np.concatenate` for host outputs, so they are not copied to the
  device and back). With one chunk covering every member `fn` sees the trees themselves,
  unsliced. On CPU the chunks run side by side (see above): `fn` must not depend on the order of
  the chunks.
  """
  num = jax.tree.leaves(trees)[0].shape[0]
  chunk = chunk or num
  if chunk >= num:
    return fn(*trees)
  full = num // chunk
  parts = [_take(trees, i, chunk) for i in range(full)]
  if num % chunk:
    parts.append(_rest(trees, full * chunk))
  if _side_by_side(len(parts)):
    futures = [_chunk_pool().submit(_in_chunk, fn, part) for part in parts]
    outs = [f.result() for f in futures]
  else:
    outs = [fn(*part) for part in parts]
  if concatenate is None:
    return _join(outs)
  return jax.tree.map(lambda *xs: concatenate(xs), *outs)
