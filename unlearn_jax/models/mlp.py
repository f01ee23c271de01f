"""Fully connected ReLU network; width = hidden units of every hidden layer."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import preprocess


class MLP(nn.Module):
  width: int
  num_classes: int
  depth: int = 2
  dtype: Any = jnp.float32   # activations; parameters stay float32, logits are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no batch statistics
    dense = lambda features: nn.Dense(features, dtype=self.dtype)
    x = preprocess(x, dtype=self.dtype).reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.relu(dense(self.width)(x))
    return dense(self.num_classes)(x).astype(jnp.float32)
