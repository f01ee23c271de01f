"""Pre-activation ResNet-18 with a width parameter, for 2-D images and 1-D signals.

Two width conventions (PAPER.md "Setting"):
  * 'nakkiran': stem k and stages k, 2k, 4k, 8k channels (Deep Double Descent); k=64 is the
    standard network (11.17M parameters on CIFAR-10).
  * 'scrub': stem fixed at 64, stages int(64p), int(128p), int(256p), int(512p) for a fraction p
    (the SCRUB code base).
Layout follows the common CIFAR pre-activation ResNet: 3x3 stem conv, four stages of two
pre-activation basic blocks (strides 1, 2, 2, 2), global average pool, linear classifier.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import preprocess


def stage_widths(width: float, convention: str) -> tuple[int, Sequence[int]]:
  """Returns (stem channels, channels of the four stages)."""
  if convention == "nakkiran":
    k = int(width)
    if k != width or k < 1:
      raise ValueError(f"nakkiran width must be a positive integer k, got {width}.")
    return k, (k, 2 * k, 4 * k, 8 * k)
  if convention == "scrub":
    stages = tuple(int(c * width) for c in (64, 128, 256, 512))
    if min(stages) < 1:
      raise ValueError(f"scrub width fraction p={width} gives an empty stage {stages}.")
    return 64, stages
  raise ValueError(f"Unknown width convention {convention!r}; allowed: 'nakkiran', 'scrub'.")


class PreActBlock(nn.Module):
  channels: int
  stride: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    nd = x.ndim - 2
    bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)
    conv = lambda kernel, stride: nn.Conv(self.channels, (kernel,) * nd, strides=(stride,) * nd,
                                          use_bias=False, dtype=self.dtype)
    out = nn.relu(bn()(x))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.channels:
      shortcut = conv(1, self.stride)(out)
    out = conv(3, self.stride)(out)
    out = conv(3, 1)(nn.relu(bn()(out)))
    return out + shortcut


class PreActResNet18(nn.Module):
  width: float
  num_classes: int
  convention: str = "nakkiran"
  dtype: Any = jnp.float32   # activations; parameters stay float32, logits are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = preprocess(x, spatial_dims=1, dtype=self.dtype)
    nd = x.ndim - 2
    stem, stages = stage_widths(self.width, self.convention)
    x = nn.Conv(stem, (3,) * nd, use_bias=False, dtype=self.dtype)(x)
    for i, channels in enumerate(stages):
      for j in range(2):
        x = PreActBlock(channels, 2 if (i > 0 and j == 0) else 1, self.dtype)(x, train)
    x = jnp.mean(x, axis=tuple(range(1, 1 + nd)))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
