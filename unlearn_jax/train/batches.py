"""Shuffled batches of pool indices: the one random data order of training and unlearning.

A member's stream over a pool is the concatenation of permutations of the pool, permutation r
drawn from `fold_in(key, first_permutation + r)`, cut into `steps` batches of `batch_size`:

* training takes one epoch's batches from permutation `epoch` alone and drops its last partial
  batch (`epoch_batches`);
* an unlearning phase takes ceil(n / batch_size) batches from permutations 0, 1, ... of its own
  key, so the last batch is topped up from the next permutation and shapes stay static, and a
  paired pool is cycled through as many permutations as the phase needs.

Only indices are drawn: the data stay on the device and members differ only in their indices.
A pool is shared by every member (shape (P,)) or per member (shape (S, P): equal sizes keep
shapes static), e.g. the shadow models of a membership attack, each on its own training half.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache
from unlearn_jax.train import host_threefry, member_chunks, sharding


def index_batches(key: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                  first_permutation=0) -> jax.Array:
  """`(steps, batch_size)` indices of ONE member: its pool permutations, concatenated."""
  need = steps * batch_size
  reps = -(-need // pool_idx.shape[0])
  perms = [jax.random.permutation(jax.random.fold_in(key, first_permutation + r), pool_idx)
           for r in range(reps)]
  return jnp.concatenate(perms)[:need].reshape(steps, batch_size)


def member_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                   first_permutation=0) -> jax.Array:
  """`index_batches` of every member: `(S, steps, batch_size)` from (S,) typed keys and a
  shared (P,) or per-member (S, P) pool.

  On XLA:CPU, called outside a trace with arrays this process holds whole, the permutations'
  sorts run in numpy (`shuffle_order`): 2.7 ms instead of XLA:CPU's 17-20 ms for 8
  members x 4,000 examples, 28 instead of 245 ms for 72 x 3,000; and their random sort keys
  are hashed in numpy while that costs less than compiling their draw would
  (`HOST_SORT_KEYS_BUDGET_S`). The indices are the same either way (tested).
  """
  return _start(keys, pool_idx, batch_size, steps, first_permutation, background=False)()


def start_member_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                         first_permutation=0) -> Callable[[], jax.Array]:
  """`member_batches` in two halves: this call dispatches the device work and starts the host
  sorts in a background thread, calling what it returns gives the batches. So a loop that
  starts its next batches before it dispatches the current steps sorts them while the steps
  run, even where the steps' call blocks until they are done (member chunks side by side):
  16 members x 4,000 examples take 3.7-4.0 ms of numpy per epoch on 2 Xeon cores (sort keys
  2.6 ms, sorts 0.9 ms), about 15% of an epoch of the width-64 MLP in two chunks of 8."""
  return _start(keys, pool_idx, batch_size, steps, first_permutation, background=True)


def _start(keys, pool_idx, batch_size: int, steps: int, first_permutation, *,
           background: bool) -> Callable[[], jax.Array]:
  args = (keys, pool_idx, first_permutation)
  if any(isinstance(a, jax.core.Tracer) for a in args):
    batches = _vmapped_batches(keys, pool_idx, batch_size, steps, first_permutation)  # inline
  elif _sort_on_host(*args):
    finish = _start_host_member_batches(keys, pool_idx, batch_size, steps, first_permutation)
    if not background:
      return finish
    # One thread per core: threads that train side by side (a sweep's stages) each sort.
    return member_chunks.core_pool("member_batches").submit(finish).result
  else:
    batches = _device_member_batches(keys, pool_idx, batch_size, steps, first_permutation)
  return lambda: batches


def _vmapped_batches(keys, pool_idx, batch_size: int, steps: int, first_permutation):
  pool_axis = 0 if pool_idx.ndim == 2 else None
  return jax.vmap(lambda k, pool: index_batches(k, pool, batch_size, steps, first_permutation),
                  in_axes=(0, pool_axis))(keys, pool_idx)


_device_member_batches = compile_cache.exact_jit(_vmapped_batches, static_argnums=(2, 3))


def draws_on_host(keys: jax.Array, pool_idx) -> bool:
  """Whether `member_batches` of these keys and pool is numpy work (XLA:CPU, outside a trace,
  arrays held whole by this process): work any thread can do without dispatching programs
  that other processes must dispatch in the same order."""
  return not any(isinstance(a, jax.core.Tracer) for a in (keys, pool_idx)) and _sort_on_host(
      keys, pool_idx)


def _sort_on_host(*args) -> bool:
  """XLA:CPU, and every array whole in this process (a multi-process run sorts on devices)."""
  return jax.default_backend() == "cpu" and all(
      getattr(a, "is_fully_addressable", True) for a in args)


def _shuffle_rounds(size: int) -> int:
  """Sorts per permutation in `jax.random.permutation`: each sorts by fresh 32-bit keys."""
  return int(np.ceil(3 * np.log(max(1, size)) / np.log(np.iinfo(np.uint32).max)))


# Random bits are integers, the same at every optimisation level. XLA:CPU compiles this program
# as fast at level 1 as at level 0 (0.31 s) and runs it 4x faster (8 members x 2 x 4,000 bits:
# 0.77 ms, 3.3 ms at level 0). It runs on the CPU path only.
@compile_cache.jit(static_argnums=(1, 2, 3), options={"xla_backend_optimization_level": 1})
def _sort_keys(keys, reps: int, rounds: int, size: int, first_permutation):
  """(S, reps, rounds, size) uint32: the sort keys `jax.random.permutation` draws for each
  member's permutations `fold_in(key, first_permutation + r)`, r < reps."""
  def permutation_keys(key, r):
    k = jax.random.fold_in(key, first_permutation + r)
    drawn = []
    for _ in range(rounds):
      k, sub = jax.random.split(k)
      drawn.append(jax.random.bits(sub, (size,), jnp.uint32))
    return jnp.stack(drawn)
  # vmapped over the repeats, not unrolled: a small pool drawn for many steps has tens of them
  # (72 members x 30 repeats of 100 keys compiled in 2.9 s unrolled, 0.7 s vmapped).
  reps_index = jnp.arange(reps, dtype=jnp.result_type(first_permutation))
  return jax.vmap(lambda key: jax.vmap(permutation_keys, in_axes=(None, 0))(key, reps_index))(keys)


def shuffle_order(sort_keys: np.ndarray) -> np.ndarray:
  """(..., P) positions from (..., rounds, P) uint32 sort keys: what successive stable sorts of
  the positions by each round's keys (`lax.sort_key_val`) give. A stable sort orders equal keys
  by position, so each round sorts the unique 64-bit values (key << 32 | position); every
  round in one sort, in place (16 members x 2 rounds x 4,000: 0.9 ms, 1.8-1.9 ms round by round)."""
  ranked = sort_keys.astype(np.uint64)
  ranked <<= np.uint64(32)
  ranked |= np.arange(sort_keys.shape[-1], dtype=np.uint64)
  ranked.sort(axis=-1)
  ranked &= np.uint64(0xFFFFFFFF)   # each round's positions, in its sorted order
  positions = ranked.view(np.int64)   # < 2^32: the same values, an index type
  order = positions[..., 0, :]
  for j in range(1, sort_keys.shape[-2]):
    order = np.take_along_axis(order, positions[..., j, :], -1)
  return order


def host_sort_keys(key_data: np.ndarray, reps: int, rounds: int, size: int,
                   first_permutation) -> np.ndarray:
  """`_sort_keys` in numpy from the keys' data ((S, 2) uint32), bit for bit."""
  drawn = np.empty((key_data.shape[0], reps, rounds, size), np.uint32)
  for r in range(reps):
    k = host_threefry.fold_in(key_data, np.asarray(first_permutation + r).astype(np.uint32))
    for j in range(rounds):
      k, sub = np.moveaxis(host_threefry.split(k, (2,)), -2, 0)   # jax.random.split(k)
      drawn[:, r, j] = host_threefry.random_bits(sub, (size,))
  return drawn


# Seconds of numpy sort-key draws per program shape, after which that shape's draws are compiled
# instead. numpy hashes 2.5-6x slower than the compiled program runs (72 members x 3,000 keys:
# 9.5 ms against 4.0 ms), but that program costs 0.5-1 s to compile per shape, and a sweep's
# unlearning phases draw each shape about ten times: so numpy draws a shape until it has spent
# about what compiling would cost, then the compiled program takes over (at most twice the
# better of the two, whichever it is). Both give the same bits.
HOST_SORT_KEYS_BUDGET_S = 0.4
_host_sort_key_seconds: dict = {}


def _start_host_member_batches(keys, pool_idx, batch_size: int, steps: int, first_permutation):
  """`_device_member_batches` with the permutations' sorts in numpy (`shuffle_order`), and
  their sort keys drawn in numpy too while that is cheaper than compiling their draw."""
  pool = np.asarray(pool_idx)
  size, need = pool.shape[-1], steps * batch_size
  reps, rounds = -(-need // size), _shuffle_rounds(size)
  shape = (keys.shape[0], reps, rounds, size)
  # A pool of one example has nothing to shuffle.
  on_host = rounds and _host_sort_key_seconds.get(shape, 0.0) < HOST_SORT_KEYS_BUDGET_S
  sort_keys = (_sort_keys(keys, reps, rounds, size, first_permutation)
               if rounds and not on_host else None)

  def finish():
    nonlocal sort_keys
    if on_host:   # here, so that a started sort draws them in its background thread too
      start = time.perf_counter()
      sort_keys = host_sort_keys(np.asarray(jax.random.key_data(keys)), reps, rounds, size,
                                 np.asarray(first_permutation))
      _host_sort_key_seconds[shape] = (_host_sort_key_seconds.get(shape, 0.0)
                                       + time.perf_counter() - start)
    order = (shuffle_order(np.asarray(sort_keys)) if rounds else
             np.zeros((keys.shape[0], reps, size), np.intp))
    values = pool[order] if pool.ndim == 1 else np.take_along_axis(pool[:, None, :], order, -1)
    values = values.reshape(len(values), -1)[:, :need].reshape(-1, steps, batch_size)
    # device_put, not jnp.asarray: that compiles a copy program per shape.
    return jax.device_put(values.astype(np.int32, copy=False))

  return finish


def fold_in_members(keys: jax.Array, data) -> jax.Array:
  """(S,) keys: every member's key folded with the same `data` (an epoch, a stream).

  Hashed in numpy where `keys_on_host` (bit for bit: tested), else one compiled program."""
  if keys_on_host(keys, data):
    folded = host_threefry.fold_in(np.asarray(jax.random.key_data(keys)),
                                   np.asarray(data).astype(np.uint32))
    return jax.random.wrap_key_data(folded, impl="threefry2x32")
  return _fold_in_members(keys, data)


@compile_cache.exact_jit
def _fold_in_members(keys: jax.Array, data) -> jax.Array:
  return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def keys_on_host(keys, *args) -> bool:
  """Whether key derivations from `keys` run in numpy: on XLA:CPU, for threefry keys on one
  device, outside a trace. Each derivation compiled is a program per member count (a sweep had
  17, 0.2 s each); hashed in numpy it takes microseconds."""
  return (sharding.on_one_cpu_device(keys) and jax.random.key_impl(keys) == "threefry2x32"
          and not any(isinstance(a, jax.core.Tracer) for a in args))


def epoch_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, epoch) -> jax.Array:
  """Per-member shuffled batches of one training epoch, (S, steps_per_epoch, batch_size).

  Each member's epoch is its permutation `fold_in(key, epoch)` of the pool; the last partial
  batch is dropped so every step has the same shape.
  """
  pool_idx = check_pool(pool_idx, keys.shape[0])
  return member_batches(keys, pool_idx, batch_size, epoch_steps(pool_idx, batch_size), epoch)


def epoch_steps(pool_idx, batch_size: int) -> int:
  """Full batches per training epoch of a pool (its last partial batch is dropped)."""
  steps = pool_idx.shape[-1] // batch_size
  if steps == 0:
    raise ValueError(f"batch size {batch_size} is larger than the pool of {pool_idx.shape[-1]} "
                     "examples.")
  return steps


def check_pool(pool_idx, num_members: int) -> jax.Array:
  """`pool_idx` as int32: (P,) shared by every member or (S, P) one row per member."""
  pool_idx = jnp.asarray(pool_idx, jnp.int32)
  if pool_idx.ndim not in (1, 2) or (pool_idx.ndim == 2 and pool_idx.shape[0] != num_members):
    raise ValueError(f"an index pool must have shape (P,) (shared) or ({num_members}, P) (one "
                     f"row per member), got {pool_idx.shape}.")
  return pool_idx
