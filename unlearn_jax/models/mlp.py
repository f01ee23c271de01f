"""Fully connected ReLU network; width = hidden units of every hidden layer."""
import flax.linen as nn

from unlearn_jax.models.layers import preprocess


class MLP(nn.Module):
  width: int
  num_classes: int
  depth: int = 2

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no batch statistics
    x = preprocess(x).reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(self.num_classes)(x)
