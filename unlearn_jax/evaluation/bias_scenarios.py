"""Ground-truth bias-removal scenarios: mislabeled forget examples and backdoor triggers.

In these scenarios the forget set is known to be harmful, so success can be measured directly:

* Mislabeled: the forget examples carry wrong labels (`flip_labels`). After unlearning the model
  should stop predicting the wrong labels (`flipped_label_error` high) and, ideally, predict the
  true ones (`true_label_recovery`).
* Backdoor: the forget examples carry a small fixed trigger and a target label (`poison`). A model
  trained on them predicts the target whenever the trigger is present; unlearning should bring the
  attack success rate (`attack_success_rate`) on triggered test inputs down to chance.

Works for images `(N, H, W, C)` (uint8 or float) and 1-D signals `(N, L)` (float). All functions
are `jnp` so the poisoned arrays can stay on the device, and the metrics accept a leading member
axis on predictions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Signal trigger: alternating spikes, a shape that smooth signals (e.g. MNIST-1D) never contain.
SIGNAL_TRIGGER_LENGTH = 4
SIGNAL_TRIGGER_AMPLITUDE = 3.0
IMAGE_TRIGGER_SIZE = 3


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


def true_label_recovery(pred_forget, true_labels_forget) -> jax.Array:
  """Fraction of mislabeled forget examples predicted as their TRUE label, per member."""
  return jnp.mean((jnp.asarray(pred_forget) == jnp.asarray(true_labels_forget))
                  .astype(jnp.float32), axis=-1)


def flipped_label_error(pred_forget, flipped_labels_forget) -> jax.Array:
  """Error against the flipped (wrong) labels on the forget set, per member (higher = removed)."""
  return jnp.mean((jnp.asarray(pred_forget) != jnp.asarray(flipped_labels_forget))
                  .astype(jnp.float32), axis=-1)


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


def attack_success_rate(pred_on_triggered_test, test_labels, target: int) -> jax.Array:
  """Fraction of triggered test inputs classified as `target`, among those whose TRUE label is not
  the target (otherwise correct predictions would count as attack successes).

  Args:
    pred_on_triggered_test: `(..., N)` predictions on `add_trigger(x_test)`.
    test_labels: `(N,)` true test labels.
    target: the backdoor's target label.

  Returns:
    `(...)` success rates; NaN if every test label equals the target.
  """
  pred = jnp.asarray(pred_on_triggered_test)
  eligible = jnp.asarray(test_labels) != target
  hits = jnp.sum(jnp.where(eligible, pred == target, False), axis=-1)
  count = jnp.sum(eligible)
  return jnp.where(count > 0, hits / jnp.maximum(count, 1), jnp.nan)
