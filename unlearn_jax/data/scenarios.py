"""Ground-truth forget sets: mislabeled and backdoored examples (the bias-removal scenarios).

In these scenarios the forget set is known to be harmful, so success of unlearning can be
measured directly (evaluation/bias_scenarios.py has the metrics):

* 'mislabeled': the forget examples carry wrong labels (`flip_labels`); `Splits.y_train_clean`
  keeps the true ones.
* 'backdoor': the forget examples carry a small fixed trigger and a target label (`poison`); a
  model trained on them predicts the target whenever the trigger is present, which the test set
  with the trigger (`Scenario.x_test_triggered`) measures.

Works for images `(N, H, W, C)` (uint8 or float) and 1-D signals `(N, L)` (float). The
transforms are `jnp`, so poisoned arrays can stay on the device.

    splits, scenario = scenarios.apply_scenario(splits, "backdoor", seed=0, target=0)
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.data.splits import Splits

# Signal trigger: alternating spikes, a shape that smooth signals (e.g. MNIST-1D) never contain.
SIGNAL_TRIGGER_LENGTH = 4
SIGNAL_TRIGGER_AMPLITUDE = 3.0
IMAGE_TRIGGER_SIZE = 3

SCENARIOS = ("none", "mislabeled", "backdoor")


def _as_key(key_or_seed) -> jax.Array:
  if isinstance(key_or_seed, (int, np.integer)):
    return jax.random.key(int(key_or_seed))
  return key_or_seed


def flip_labels(labels, idx, num_classes: int, key_or_seed) -> jax.Array:
  """Gives the examples at `idx` a different, uniformly random wrong label.

  Adding an offset drawn from 1..C-1 modulo C makes "different" certain, not likely, and leaves
  every wrong class equally probable.

  Args:
    labels: `(N,)` integer labels.
    idx: indices of the examples to mislabel (e.g. the forget set).
    num_classes: C, at least 2.
    key_or_seed: a `jax.random.key` or an int seed; same seed, same labels.

  Returns:
    `(N,)` labels, changed only at `idx`.
  """
  if num_classes < 2:
    raise ValueError("flipping needs at least 2 classes")
  labels = jnp.asarray(labels)
  idx = jnp.asarray(idx)
  offsets = jax.random.randint(_as_key(key_or_seed), idx.shape, 1, num_classes)
  flipped = (labels[idx] + offsets.astype(labels.dtype)) % num_classes
  return labels.at[idx].set(flipped)


def add_trigger(x, image_size: int = IMAGE_TRIGGER_SIZE,
                signal_length: int = SIGNAL_TRIGGER_LENGTH,
                signal_amplitude: float = SIGNAL_TRIGGER_AMPLITUDE,
                high: float | None = None, low: float | None = None) -> jax.Array:
  """Stamps the fixed trigger onto every example of `x`.

  Images `(N, H, W, C)`: a `image_size` x `image_size` checkerboard in the bottom-right corner,
  all channels, values `high`/`low` (default 255/0 for uint8, 1/0 for floats in [0, 1]).
  Signals `(N, L)`: the last `signal_length` samples become +A, -A, +A, ... with A =
  `signal_amplitude`. The trigger replaces the pixels/samples rather than adding to them, so it
  looks the same on every input and is easy for a network to learn.

  Returns:
    Triggered copy of `x`, same shape and dtype.
  """
  x = jnp.asarray(x)
  if x.ndim == 4:
    if high is None:
      high = 255 if x.dtype == jnp.uint8 else 1.0
    if low is None:
      low = 0
    rows = jnp.arange(image_size)[:, None]
    cols = jnp.arange(image_size)[None, :]
    patch = jnp.where((rows + cols) % 2 == 0, high, low).astype(x.dtype)
    return x.at[:, -image_size:, -image_size:, :].set(patch[None, :, :, None])
  if x.ndim == 2:
    signs = jnp.where(jnp.arange(signal_length) % 2 == 0, 1.0, -1.0)
    return x.at[:, -signal_length:].set((signal_amplitude * signs).astype(x.dtype))
  raise ValueError(f"add_trigger expects images (N, H, W, C) or signals (N, L), got {x.shape}")


def poison(x, y, idx, target: int, **trigger_kwargs):
  """Backdoors the examples at `idx`: trigger on the input, label set to `target`.

  Args:
    x: `(N, ...)` inputs; y: `(N,)` labels.
    idx: indices to poison (the forget set of the backdoor scenario).
    target: the attacker's label.
    **trigger_kwargs: forwarded to `add_trigger`.

  Returns:
    `(x_poisoned, y_poisoned)`.
  """
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  idx = jnp.asarray(idx)
  x = x.at[idx].set(add_trigger(x[idx], **trigger_kwargs))
  y = y.at[idx].set(jnp.asarray(target, y.dtype))
  return x, y


@dataclasses.dataclass(frozen=True)
class Scenario:
  """A forget set with ground truth (beyond the study): what success of bias removal means.

  'mislabeled': the forget examples' labels were flipped to another class; `splits.y_train_clean`
  holds the true ones. 'backdoor': the forget examples carry a trigger and the label `target`;
  `x_test_triggered` is the test set with the trigger, for the attack success rate.
  """
  name: str = "none"
  target: int = 0
  x_test_triggered: np.ndarray | None = None


def apply_scenario(splits: Splits, name: str, seed: int, target: int = 0
                   ) -> tuple[Splits, Scenario]:
  """Turns the forget set into mislabeled or backdoored examples (see `Scenario`)."""
  if name not in SCENARIOS:
    raise ValueError(f"Unknown scenario {name!r}; allowed: {SCENARIOS}.")
  if name == "none":
    return splits, Scenario()
  if name == "mislabeled":
    y = np.asarray(flip_labels(splits.y_train, splits.forget_idx, splits.num_classes, seed))
    return dataclasses.replace(splits, y_train=y.astype(splits.y_train.dtype)), Scenario(name)
  if not 0 <= target < splits.num_classes:
    raise ValueError(f"backdoor target {target} is not a class (0..{splits.num_classes - 1}).")
  x, y = poison(splits.x_train, splits.y_train, splits.forget_idx, target)
  triggered = np.asarray(add_trigger(splits.x_test))
  return (dataclasses.replace(splits, x_train=np.asarray(x), y_train=np.asarray(y)),
          Scenario(name, target, triggered))
