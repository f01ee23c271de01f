"""JAX's threefry2x32 keys and random bits in numpy, bit for bit.

XLA:CPU takes about 0.3 s to compile even the random bits of a small MLP's init (at optimisation
level 0), where numpy hashes them in milliseconds. Threefry is integer arithmetic, so numpy gives
exactly the bits JAX gives; this follows `jax._src.random.threefry2x32` for the default
`jax_threefry_partitionable=True` (tests/test_train.py compares every function with JAX).

Keys are uint32 arrays with a trailing axis of 2 (`jax.random.key_data`'s layout); every
function broadcasts over leading axes, e.g. one key per member.
"""
from __future__ import annotations

import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


_BLOCK = 1 << 16   # elements hashed at a time: blocks that stay in cache run 1.6x faster


def threefry2x32(k1, k2, x1, x2) -> tuple[np.ndarray, np.ndarray]:
  """The Threefry-2x32 hash (20 rounds) of counts (x1, x2) under keys (k1, k2), broadcast."""
  k1, k2, x1, x2 = np.broadcast_arrays(*(np.asarray(a, np.uint32) for a in (k1, k2, x1, x2)))
  if k1.size <= _BLOCK:
    return _threefry_block(k1, k2, x1, x2)
  flat = [a.reshape(-1) for a in (k1, k2, x1, x2)]
  y1, y2 = np.empty(k1.size, np.uint32), np.empty(k1.size, np.uint32)
  for s in range(0, k1.size, _BLOCK):
    y1[s:s + _BLOCK], y2[s:s + _BLOCK] = _threefry_block(*(a[s:s + _BLOCK] for a in flat))
  return y1.reshape(k1.shape), y2.reshape(k1.shape)


def _threefry_block(k1, k2, x1, x2) -> tuple[np.ndarray, np.ndarray]:
  # The hash is arithmetic modulo 2^32: numpy warns of wrapping on 0-d inputs, which is meant.
  with np.errstate(over="ignore"):
    return _threefry_rounds(k1, k2, x1, x2)


def _threefry_rounds(k1, k2, x1, x2) -> tuple[np.ndarray, np.ndarray]:
  ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
  x1, x2 = x1 + ks[0], x2 + ks[1]   # new arrays, updated in place below
  tmp = np.empty_like(x2)
  for group in range(5):
    for r in _ROTATIONS[group % 2]:
      x1 += x2
      np.left_shift(x2, np.uint32(r), out=tmp)
      x2 >>= np.uint32(32 - r)
      x2 |= tmp
      x2 ^= x1
    x1 += ks[(group + 1) % 3]
    x2 += ks[(group + 2) % 3]
    x2 += np.uint32(group + 1)
  return x1, x2


def seed(seeds) -> np.ndarray:
  """`jax.random.key(s)`'s data for integer seeds `s` of any shape: (..., 2) uint32."""
  seeds = np.asarray(seeds)
  if not np.issubdtype(seeds.dtype, np.integer):
    raise TypeError(f"seeds must be integers, got {seeds.dtype}")
  wide = seeds.astype(np.int64).view(np.uint64)
  # A logical shift by 32 of a 32-bit seed is 0 in XLA; of a 64-bit one, its high word.
  high = (wide >> np.uint64(32)) if seeds.dtype.itemsize == 8 else np.zeros_like(wide)
  return np.stack([high.astype(np.uint32), (wide & np.uint64(0xFFFFFFFF)).astype(np.uint32)], -1)


def fold_in(keys, data) -> np.ndarray:
  """`jax.random.fold_in(key, data)` for uint32 `data` (broadcast against the keys)."""
  keys = np.asarray(keys, np.uint32)
  y1, y2 = threefry2x32(keys[..., 0], keys[..., 1], np.uint32(0),
                        np.asarray(data).astype(np.uint32))
  return np.stack([y1, y2], -1)


def _counts(shape) -> tuple[np.ndarray, np.ndarray]:
  """`iota_2x32_shape`: each element's row-major index as (high, low) uint32 words."""
  index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64).reshape(shape)
  return (index >> np.uint64(32)).astype(np.uint32), index.astype(np.uint32)


def random_bits(keys, shape) -> np.ndarray:
  """`jax.random.bits(key, shape, uint32)`: (*keys.shape[:-1], *shape) uint32."""
  keys = np.asarray(keys, np.uint32)
  expand = (...,) + (None,) * len(shape)
  high, low = _counts(tuple(shape))
  b1, b2 = threefry2x32(keys[..., 0][expand], keys[..., 1][expand], high, low)
  return b1 ^ b2


def split(keys, shape) -> np.ndarray:
  """`jax.random.split(key, shape)`'s data: (*keys.shape[:-1], *shape, 2) uint32."""
  keys = np.asarray(keys, np.uint32)
  expand = (...,) + (None,) * len(shape)
  high, low = _counts(tuple(shape))
  b1, b2 = threefry2x32(keys[..., 0][expand], keys[..., 1][expand], high, low)
  return np.stack([b1, b2], -1)
