"""Width-parameterized Flax models, selected by name.

    model = unlearn_jax.models.get("preact_resnet18", width=16, num_classes=10)
    variables = model.init(key, x, train=False)   # {'params', 'batch_stats'?}

Widths are integers (hidden units, channels k) except for 'preact_resnet18_scrub', whose width
is SCRUB's fraction p of the standard channel counts.
"""
import numbers
from typing import Callable

import flax.linen as nn
import jax
import numpy as np

from unlearn_jax.models import layers
from unlearn_jax.models.cnn import CNN, FORMULATIONS, check_formulation, default_formulation
from unlearn_jax.models.mlp import MLP
from unlearn_jax.models.padding import active_mask, pad_variables, unpad_variables
from unlearn_jax.models.preact_resnet import PreActResNet18
from unlearn_jax.registry import Registry

# `compute_dtype` ('float32' or 'bfloat16', a model kwarg of every built-in) is the activations'
# dtype: bfloat16 is mixed precision (float32 parameters, optimizer state and loss).
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", {
    "mlp": lambda width, num_classes, depth=2, compute_dtype="float32": MLP(
        int(width), num_classes, depth, layers.compute_dtype(compute_dtype)),
    "cnn": lambda width, num_classes, compute_dtype="float32", formulation="auto": CNN(
        int(width), num_classes, layers.compute_dtype(compute_dtype),
        cnn_formulation(formulation)),
    "preact_resnet18": lambda width, num_classes, compute_dtype="float32": PreActResNet18(
        width, num_classes, "nakkiran", layers.compute_dtype(compute_dtype)),
    "preact_resnet18_scrub": lambda width, num_classes, compute_dtype="float32": PreActResNet18(
        width, num_classes, "scrub", layers.compute_dtype(compute_dtype)),
})
# Built-in models whose width counts units or channels; int() would silently truncate 2.5 to 2.
INTEGER_WIDTH_MODELS = ("mlp", "cnn", "preact_resnet18")


def cnn_formulation(formulation: str = "auto", backend: str | None = None) -> str:
  """'auto' resolved by the fixed per-backend rule (`cnn.default_formulation`), else checked."""
  if formulation == "auto":
    return default_formulation(backend or jax.default_backend())
  return check_formulation(formulation)


def resolved_kwargs(name: str, kwargs: dict) -> dict:
  """`kwargs` with every choice made on the model's behalf filled in (the CNN's formulation):
  what training identities record, so a run on another backend never reuses these models."""
  kwargs = dict(kwargs)
  if name == "cnn":
    kwargs["formulation"] = cnn_formulation(kwargs.get("formulation", "auto"))
  return kwargs


def get(name: str, width: float, num_classes: int, **kwargs) -> nn.Module:
  """Returns the Flax module `name` at `width` (hidden units, k, or fraction p)."""
  build = MODELS.get(name)
  if isinstance(width, bool) or not isinstance(width, numbers.Real):
    raise ValueError(f"model width must be a number, got {width!r}.")
  if not 0 < width < float("inf"):
    raise ValueError(f"model width must be positive, got {width}.")
  if name in INTEGER_WIDTH_MODELS and width != int(width):
    raise ValueError(f"model {name!r} needs an integer width, got {width}; fractional widths p "
                     "are only meaningful for 'preact_resnet18_scrub'.")
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
  return build(width, num_classes, **kwargs)


def num_params(variables) -> int:
  """Parameter count of `Variables` or a Flax variables dict (shapes suffice)."""
  params = variables.params if hasattr(variables, "params") else variables["params"]
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


__all__ = ["FORMULATIONS", "INTEGER_WIDTH_MODELS", "MODELS", "active_mask", "cnn_formulation",
           "get", "resolved_kwargs", "num_params", "pad_variables",
           "unpad_variables"]
