"""The 4-layer "mCNN" of Nakkiran et al. (Deep Double Descent): k, 2k, 4k, 8k channels.

Each layer is conv3 -> BatchNorm -> ReLU -> max-pool (pool 1, 2, 2, 2); then a global max-pool and
a linear layer. The convolution is 1-D for signals (N, L) and 2-D for images (N, H, W, C). We pool
globally (not flatten) so the classifier's input is the 8k channels in order, which keeps a
zero-padded narrow network exactly equivalent to the narrow one.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import preprocess


class CNN(nn.Module):
  width: int
  num_classes: int
  dtype: Any = jnp.float32   # activations; parameters stay float32, logits are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = preprocess(x, spatial_dims=1, dtype=self.dtype)
    nd = x.ndim - 2
    for i, mult in enumerate((1, 2, 4, 8)):
      x = nn.Conv(self.width * mult, (3,) * nd, use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x))
      if i > 0 and min(x.shape[1:-1]) >= 2:
        x = nn.max_pool(x, (2,) * nd, strides=(2,) * nd)
    x = jnp.max(x, axis=tuple(range(1, 1 + nd)))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
