"""The 4-layer "mCNN" of Nakkiran et al. (Deep Double Descent): k, 2k, 4k, 8k channels.

Each layer is conv3 -> BatchNorm -> ReLU -> max-pool (pool 1, 2, 2, 2); then a global max-pool and
a linear layer. The convolution is 1-D for signals (N, L) and 2-D for images (N, H, W, C). We pool
globally (not flatten) so the classifier's input is the 8k channels in order, which keeps a
zero-padded narrow network exactly equivalent to the narrow one.

`formulation` says how the convolution and the 2-pooling are computed; every formulation has
the same parameter tree and computes the same function (equal up to float rounding, tested
against `flax.linen.Conv`/`max_pool`):
  * 'flax': `nn.Conv` (XLA's convolution) and `nn.max_pool` (a reduce-window).
  * 'shifted': the convolution as one matmul of shifted copies of the input (im2col) against the
    reshaped kernel, the pooling as the maximum of the even and the odd positions.
Which is faster depends on the backend (`default_formulation`, from benchmarks/results).
"""
import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from unlearn_jax.models.layers import preprocess

FORMULATIONS = ("flax", "shifted")


def default_formulation(backend: str) -> str:
  """The fixed per-backend rule (benchmarks/results/cnn-formulation.md): 'shifted' on CPU, where
  XLA's reduce-window pooling and its gradient dominate a step; 'flax' elsewhere (not measured
  on accelerators, whose convolutions are their vendors' kernels)."""
  return "shifted" if backend == "cpu" else "flax"


def check_formulation(formulation: str) -> str:
  if formulation not in FORMULATIONS:
    raise ValueError(f"Unknown CNN formulation {formulation!r}; allowed: {list(FORMULATIONS)} "
                     "(or 'auto' through `models.get`).")
  return formulation


class ShiftedConv(nn.Module):
  """A stride-1, 'SAME'-padded convolution without bias as one matmul of shifted input copies.

  The kernel is `nn.Conv`'s (same name, shape, initialiser), so parameter trees and
  initialisations are interchangeable. Works for any number of spatial dimensions.
  """
  features: int
  kernel_size: tuple
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    nd = len(self.kernel_size)
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        self.kernel_size + (x.shape[-1], self.features), jnp.float32)
    pads = [((k - 1) // 2, k // 2) for k in self.kernel_size]   # XLA's 'SAME' split
    xp = jnp.pad(x, [(0, 0)] + pads + [(0, 0)])
    size = x.shape[1:1 + nd]
    # Offsets in the kernel's row-major order, so the channels of the copies line up with the
    # kernel reshaped to (prod(kernel_size) * C_in, C_out).
    copies = [xp[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, size))]
              for offset in itertools.product(*(range(k) for k in self.kernel_size))]
    patches = jnp.concatenate(copies, axis=-1)
    return patches @ kernel.reshape(-1, self.features).astype(self.dtype)


def pairwise_max_pool(x, nd: int):
  """`nn.max_pool(x, (2,)*nd, strides=(2,)*nd)` ('VALID') as maxima of even and odd positions."""
  for axis in range(1, 1 + nd):
    n = x.shape[axis] // 2 * 2
    even = jax.lax.slice_in_dim(x, 0, n, 2, axis)
    odd = jax.lax.slice_in_dim(x, 1, n, 2, axis)
    x = jnp.maximum(even, odd)
  return x


class CNN(nn.Module):
  width: int
  num_classes: int
  dtype: Any = jnp.float32   # activations; parameters stay float32, logits are float32
  formulation: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    check_formulation(self.formulation)
    x = preprocess(x, spatial_dims=1, dtype=self.dtype)
    nd = x.ndim - 2
    for i, mult in enumerate((1, 2, 4, 8)):
      if self.formulation == "shifted":
        x = ShiftedConv(self.width * mult, (3,) * nd, self.dtype, name=f"Conv_{i}")(x)
      else:
        x = nn.Conv(self.width * mult, (3,) * nd, use_bias=False, dtype=self.dtype,
                    name=f"Conv_{i}")(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x))
      if i > 0 and min(x.shape[1:-1]) >= 2:
        if self.formulation == "shifted":
          x = pairwise_max_pool(x, nd)
        else:
          x = nn.max_pool(x, (2,) * nd, strides=(2,) * nd)
    x = jnp.max(x, axis=tuple(range(1, 1 + nd)))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
