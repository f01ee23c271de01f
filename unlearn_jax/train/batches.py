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

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache


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

  Inside a trace this is `index_batches` vmapped. Outside one, on XLA:CPU with every array
  whole in this process, the permutations' random sort keys are drawn by a compiled program and
  sorted in numpy (`shuffle_order`), which sorts much faster than XLA:CPU; elsewhere the whole
  draw is one compiled program. The indices are the same either way (tested).
  """
  if any(isinstance(a, jax.core.Tracer) for a in (keys, pool_idx, first_permutation)):
    return _vmapped_batches(keys, pool_idx, batch_size, steps, first_permutation)
  if _sort_on_host(keys, pool_idx):
    return _host_sorted_batches(keys, pool_idx, batch_size, steps, first_permutation)
  return _device_member_batches(keys, pool_idx, batch_size, steps, first_permutation)


def _vmapped_batches(keys, pool_idx, batch_size: int, steps: int, first_permutation):
  pool_axis = 0 if pool_idx.ndim == 2 else None
  return jax.vmap(lambda k, pool: index_batches(k, pool, batch_size, steps, first_permutation),
                  in_axes=(0, pool_axis))(keys, pool_idx)


_device_member_batches = compile_cache.exact_jit(_vmapped_batches, static_argnums=(2, 3))


def _sort_on_host(*args) -> bool:
  """XLA:CPU, and every array whole in this process (a multi-process run sorts on devices)."""
  return jax.default_backend() == "cpu" and all(
      getattr(a, "is_fully_addressable", True) for a in args)


def _shuffle_rounds(size: int) -> int:
  """Sorts per permutation in `jax.random.permutation`: each sorts by fresh 32-bit keys."""
  return int(np.ceil(3 * np.log(max(1, size)) / np.log(np.iinfo(np.uint32).max)))


# Random bits are integers, the same at every optimisation level; XLA:CPU compiles this program
# about as fast at level 1 as at level 0 and runs it several times faster.
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
  # vmapped over the repeats, not unrolled: a small pool drawn for many steps has tens of them,
  # and an unrolled program compiles several times slower.
  reps_index = jnp.arange(reps, dtype=jnp.result_type(first_permutation))
  return jax.vmap(lambda key: jax.vmap(permutation_keys, in_axes=(None, 0))(key, reps_index))(keys)


def shuffle_order(sort_keys: np.ndarray) -> np.ndarray:
  """(..., P) positions from (..., rounds, P) uint32 sort keys: what successive stable sorts of
  the positions by each round's keys (`lax.sort_key_val`) give. A stable sort orders equal keys
  by position, so each round sorts the unique 64-bit values (key << 32 | position); every
  round in one in-place sort."""
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


def _host_sorted_batches(keys, pool_idx, batch_size: int, steps: int, first_permutation):
  """`_device_member_batches` with the permutations' sorts in numpy (`shuffle_order`)."""
  pool = np.asarray(pool_idx)
  size, need = pool.shape[-1], steps * batch_size
  reps, rounds = -(-need // size), _shuffle_rounds(size)
  if rounds:
    order = shuffle_order(np.asarray(_sort_keys(keys, reps, rounds, size, first_permutation)))
  else:   # a pool of one example has nothing to shuffle
    order = np.zeros((keys.shape[0], reps, size), np.intp)
  values = pool[order] if pool.ndim == 1 else np.take_along_axis(pool[:, None, :], order, -1)
  values = values.reshape(len(values), -1)[:, :need].reshape(-1, steps, batch_size)
  # device_put, not jnp.asarray: that compiles a copy program per shape.
  return jax.device_put(values.astype(np.int32, copy=False))


@compile_cache.exact_jit
def fold_in_members(keys: jax.Array, data) -> jax.Array:
  """(S,) keys: every member's key folded with the same `data` (an epoch, a stream)."""
  return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


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
