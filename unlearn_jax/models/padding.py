"""Zero-padding a narrow network into a wider one of the same family.

A width-k network equals a width-K network (K >= k) whose extra channels have zero weights in
and out and zero BatchNorm scale/bias: the extra units output exactly zero and receive exactly
zero gradient, so SGD, momentum, weight decay and Adam all keep them at zero. Every leaf of our
models lays out its width-dependent axes so that the narrow network's channels are a prefix of
the wide one's (no flatten after a width-dependent layer), so padding is "put the narrow array in
the top-left corner". This lets members of different widths share one vmapped axis.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def _corner(shape, big_shape):
  if len(shape) != len(big_shape) or any(s > b for s, b in zip(shape, big_shape)):
    raise ValueError(f"cannot pad a leaf of shape {shape} into {big_shape}.")
  return tuple(slice(0, s) for s in shape)


def pad_variables(narrow: PyTree, wide_like: PyTree) -> PyTree:
  """Pads every leaf of `narrow` with zeros to the shape of the matching leaf of `wide_like`.

  BatchNorm running variances are padded with ones (their initial value) so that frozen-BN
  inference on the padded channels stays finite; their scale is zero, so it has no effect.
  """
  def pad(path, leaf, big):
    name = jax.tree_util.keystr(path)
    fill = 1.0 if name.endswith("['var']") else 0.0
    widths = [(0, b - n) for n, b in zip(leaf.shape, big.shape)]
    _corner(leaf.shape, big.shape)  # validates the shapes
    if isinstance(leaf, jax.core.Tracer):
      return jnp.pad(leaf, widths, constant_values=fill)
    # Concrete leaves pad on the host: eager device ops would compile a program per leaf shape.
    return jnp.asarray(np.pad(np.asarray(leaf), widths, constant_values=fill))

  return jax.tree.map_with_path(pad, narrow, wide_like)


def active_mask(narrow_like: PyTree, wide_like: PyTree) -> PyTree:
  """A {0,1} float tree shaped like `wide_like`, 1 where a parameter belongs to the narrow net.

  Methods that do more than follow gradients (l1 norms, saliency ranking, counting a top-r
  fraction, dampening, noise) must restrict themselves to the active entries.
  """
  def mask(leaf, big):
    out = np.zeros(big.shape, np.float32)
    out[_corner(leaf.shape, big.shape)] = 1.0
    return jnp.asarray(out)

  return jax.tree.map(mask, narrow_like, wide_like)


def unpad_variables(wide: PyTree, narrow_like: PyTree) -> PyTree:
  """Inverse of `pad_variables`: the top-left corner of each leaf."""
  return jax.tree.map(lambda big, leaf: big[_corner(leaf.shape, big.shape)], wide, narrow_like)
