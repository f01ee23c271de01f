"""Shuffled batches of pool indices: the one random data order of training and unlearning.

A member's stream over a pool is the concatenation of permutations of the pool, permutation r
drawn from `fold_in(key, first_permutation + r)`, cut into `steps` batches of `batch_size`:

* training takes one epoch's batches from permutation `epoch` alone and drops its last partial
  batch (`epoch_batches`);
* an unlearning phase takes ceil(n / batch_size) batches from permutations 0, 1, ... of its own
  key, so the last batch is topped up from the next permutation and shapes stay static, and a
  paired pool is cycled through as many permutations as the phase needs.

Only indices are drawn: the data stay on the device and members differ only in their indices.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def index_batches(key: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                  first_permutation=0) -> jax.Array:
  """`(steps, batch_size)` indices of ONE member: its pool permutations, concatenated."""
  need = steps * batch_size
  reps = -(-need // pool_idx.shape[0])
  perms = [jax.random.permutation(jax.random.fold_in(key, first_permutation + r), pool_idx)
           for r in range(reps)]
  return jnp.concatenate(perms)[:need].reshape(steps, batch_size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def member_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, steps: int,
                   first_permutation=0) -> jax.Array:
  """`index_batches` of every member: `(S, steps, batch_size)` from (S,) typed keys."""
  return jax.vmap(lambda k: index_batches(k, pool_idx, batch_size, steps, first_permutation))(
      keys)


def epoch_batches(keys: jax.Array, pool_idx: jax.Array, batch_size: int, epoch) -> jax.Array:
  """Per-member shuffled batches of one training epoch, (S, steps_per_epoch, batch_size).

  Each member's epoch is its permutation `fold_in(key, epoch)` of the pool; the last partial
  batch is dropped so every step has the same shape.
  """
  steps = len(pool_idx) // batch_size
  if steps == 0:
    raise ValueError(f"batch size {batch_size} is larger than the pool of {len(pool_idx)} "
                     "examples.")
  return member_batches(keys, jnp.asarray(pool_idx), batch_size, steps, epoch)
