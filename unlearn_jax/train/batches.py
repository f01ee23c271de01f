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

from unlearn_jax import compile_cache


def index_batches(key: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                  first_permutation=0) -> jax.Array:
  """`(steps, batch_size)` indices of ONE member: its pool permutations, concatenated."""
  need = steps * batch_size
  reps = -(-need // pool_idx.shape[0])
  perms = [jax.random.permutation(jax.random.fold_in(key, first_permutation + r), pool_idx)
           for r in range(reps)]
  return jnp.concatenate(perms)[:need].reshape(steps, batch_size)


@compile_cache.exact_jit(static_argnums=(2, 3))
def member_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                   first_permutation=0) -> jax.Array:
  """`index_batches` of every member: `(S, steps, batch_size)` from (S,) typed keys and a
  shared (P,) or per-member (S, P) pool."""
  pool_axis = 0 if pool_idx.ndim == 2 else None
  return jax.vmap(lambda k, pool: index_batches(k, pool, batch_size, steps, first_permutation),
                  in_axes=(0, pool_axis))(keys, pool_idx)


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
  steps = pool_idx.shape[-1] // batch_size
  if steps == 0:
    raise ValueError(f"batch size {batch_size} is larger than the pool of {pool_idx.shape[-1]} "
                     "examples.")
  return member_batches(keys, pool_idx, batch_size, steps, epoch)


def check_pool(pool_idx, num_members: int) -> jax.Array:
  """`pool_idx` as int32: (P,) shared by every member or (S, P) one row per member."""
  pool_idx = jnp.asarray(pool_idx, jnp.int32)
  if pool_idx.ndim not in (1, 2) or (pool_idx.ndim == 2 and pool_idx.shape[0] != num_members):
    raise ValueError(f"an index pool must have shape (P,) (shared) or ({num_members}, P) (one "
                     f"row per member), got {pool_idx.shape}.")
  return pool_idx
