"""Sharding the member axis over devices (and hosts).

Members are independent, so the member axis splits over a 1-D mesh with no communication
beyond the final gather. Recent JAX makes mesh axes Explicit by default, which rejects the plain
gathers our steps do (data[batch_idx]); we ask for Auto axes and let the compiler propagate.
Member counts that do not divide the device count are padded by repeating the last member; the
caller drops the padding with `unpad_members`.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

PyTree = Any
AXIS = "members"


def on_one_cpu_device(x) -> bool:
  """A concrete (not traced) array held whole by one CPU device: what numpy can read and stand
  in for a compiled program on, with no sharding to keep."""
  return (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
          and len(x.sharding.device_set) == 1
          and next(iter(x.sharding.device_set)).platform == "cpu")


def member_mesh(devices=None) -> jax.sharding.Mesh:
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def padded_count(num_members: int, num_devices: int) -> int:
  return -(-num_members // num_devices) * num_devices


def pad_members(tree: PyTree, num: int) -> PyTree:
  """Repeats the last member until the member axis has length `num`."""
  def pad(x):
    extra = num - x.shape[0]
    return x if extra == 0 else jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])
  return jax.tree.map(pad, tree)


def unpad_members(tree: PyTree, num: int) -> PyTree:
  return jax.tree.map(lambda x: x[:num], tree)


def _put(x, sharding):
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  # Every process holds the full host array; each contributes the shards it addresses.
  host = np.asarray(x) if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: host[idx])


def shard_members(tree: PyTree, mesh) -> PyTree:
  """Places every leaf split along its leading (member) axis."""
  return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P(AXIS))), tree)


def replicate(tree: PyTree, mesh) -> PyTree:
  return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P())), tree)


def to_host(tree: PyTree) -> PyTree:
  """Gathers (possibly multi-host) arrays to numpy on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return multihost_utils.process_allgather(tree, tiled=True)
