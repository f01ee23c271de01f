"""Width-parameterized Flax models, selected by name.

    model = unlearn_jax.models.get("preact_resnet18", width=16, num_classes=10)
    variables = model.init(key, x, train=False)   # {'params', 'batch_stats'?}
"""
from typing import Callable

import flax.linen as nn
import jax
import numpy as np

from unlearn_jax.models.cnn import CNN
from unlearn_jax.models.mlp import MLP
from unlearn_jax.models.padding import active_mask, pad_variables, unpad_variables
from unlearn_jax.models.preact_resnet import PreActResNet18

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda width, num_classes, depth=2: MLP(int(width), num_classes, depth),
    "cnn": lambda width, num_classes: CNN(int(width), num_classes),
    "preact_resnet18": lambda width, num_classes: PreActResNet18(width, num_classes, "nakkiran"),
    "preact_resnet18_scrub": lambda width, num_classes: PreActResNet18(width, num_classes, "scrub"),
}


def get(name: str, width: float, num_classes: int, **kwargs) -> nn.Module:
  """Returns the Flax module `name` at `width` (hidden units, k, or fraction p)."""
  if name not in MODELS:
    raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}.")
  if width <= 0:
    raise ValueError(f"model width must be positive, got {width}.")
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
  return MODELS[name](width, num_classes, **kwargs)


def num_params(variables) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(variables["params"])))


__all__ = ["MODELS", "get", "num_params", "pad_variables", "unpad_variables", "active_mask"]
