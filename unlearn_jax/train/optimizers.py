"""Optimizers whose learning rate and weight decay are member-axis data.

`make_optimizer(...)` returns a factory `tx = factory(learning_rate=..., weight_decay=...)` built
with `optax.inject_hyperparams`: the numbers live in the optimizer state, so one compiled step
serves members with different values. The schedule's *shape* (constant, cosine, step) is static.
"""
from typing import Callable, Sequence

import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "step")


def schedule_shape(name: str, total_steps: int, boundaries: Sequence[float] = (0.5, 0.75),
                   factor: float = 0.1) -> optax.Schedule:
  """A multiplier in [0, 1] over steps: constant, cosine decay to 0, or piecewise step decay."""
  if name == "constant":
    return optax.constant_schedule(1.0)
  if name == "cosine":
    return optax.cosine_decay_schedule(1.0, max(total_steps, 1))
  if name == "step":
    return optax.piecewise_constant_schedule(
        1.0, {int(b * total_steps): factor for b in boundaries})
  raise ValueError(f"Unknown schedule {name!r}; allowed: {SCHEDULES}.")


def make_optimizer(name: str = "sgd", schedule: str = "constant", total_steps: int = 1,
                   momentum: float = 0.9, b1: float = 0.9, b2: float = 0.999,
                   step_boundaries: Sequence[float] = (0.5, 0.75), step_factor: float = 0.1
                   ) -> Callable[..., optax.GradientTransformation]:
  """Returns `factory(learning_rate, weight_decay) -> GradientTransformation`.

  SGD applies weight decay to the gradient before momentum (PyTorch's SGD); Adam decouples it
  (AdamW). Both multiply the step by the schedule's shape times `learning_rate`.
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {name!r}; allowed: {OPTIMIZERS}.")
  shape = schedule_shape(schedule, total_steps, step_boundaries, step_factor)

  def build(learning_rate, weight_decay):
    if name == "sgd":
      parts = [optax.add_decayed_weights(weight_decay), optax.trace(decay=momentum)]
    else:
      parts = [optax.scale_by_adam(b1=b1, b2=b2), optax.add_decayed_weights(weight_decay)]
    return optax.chain(*parts, optax.scale_by_schedule(shape), optax.scale(-1.0),
                       optax.scale(learning_rate))

  return optax.inject_hyperparams(build, hyperparam_dtype=jnp.float32)
