"""Per-example and per-split classification metrics computed from logits.

Every function here is pure `jnp` and works on any number of leading axes: a single model's
logits `(N, C)`, a member-stacked sweep `(S, N, C)`, or `(S, G, N, C)` for seeds x grid points.
Labels are `(N,)` and broadcast against the leading axes, because every member of a sweep is
evaluated on the same split. All reductions are over the example axis only, so a diverged member
(NaN logits) yields NaN for that member and leaves the others untouched; use
`masked_mean_over_members` to aggregate over members while skipping those.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _broadcast_labels(logits: jax.Array, labels: jax.Array) -> jax.Array:
  # Labels are shared by all members; broadcasting them up front lets take_along_axis (which needs
  # equal ranks) serve every layout of leading axes.
  return jnp.broadcast_to(jnp.asarray(labels, jnp.int32), logits.shape[:-1])


def per_example_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Cross-entropy loss of each example, `(..., N, C), (N,) -> (..., N)`."""
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  labels = _broadcast_labels(logits, labels)
  return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]


def predicted_labels(logits: jax.Array) -> jax.Array:
  """Arg-max class, `(..., N, C) -> (..., N)` int32."""
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def per_example_error(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """0/1 error of each example as float32, `(..., N, C), (N,) -> (..., N)`.

  A member with NaN logits gets error NaN rather than a silent 0/1 from argmax over NaNs, so
  divergence cannot masquerade as a (bad or good) error rate.
  """
  wrong = (predicted_labels(logits) != _broadcast_labels(logits, labels)).astype(jnp.float32)
  finite = jnp.all(jnp.isfinite(logits), axis=-1)
  return jnp.where(finite, wrong, jnp.nan)


def true_class_confidence(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax probability of the true class, `(..., N, C), (N,) -> (..., N)`.

  This is the feature of the SalUn-style MIA-efficacy attack (`mia.mia_efficacy`).
  """
  return jnp.exp(-per_example_loss(logits, labels))


def logit_scaled_confidence(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """log(p / (1 - p)) of the true class, `(..., N, C), (N,) -> (..., N)`.

  Computed as `z_y - logsumexp(z_{c != y})`, which equals log p_y - log(1 - p_y) exactly but never
  forms 1 - p_y, so it stays accurate in float32 when p_y rounds to 1 (the usual case for a wide
  model on its training examples). This is the statistic of the NeurIPS 2023 unlearning-challenge
  score (`epsilon_score`) and of LiRA; the challenge's reference code gets the same quantity via
  float64 probabilities with a 1e-45 floor, which clips it to about +-103.
  """
  labels = _broadcast_labels(logits, labels)
  true_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  is_true = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  other = jax.nn.logsumexp(jnp.where(is_true, -jnp.inf, logits), axis=-1)
  return true_logit - other


def split_metrics(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Mean loss and error over a split's examples.

  Args:
    logits: `(..., N, C)`.
    labels: `(N,)` integer labels.

  Returns:
    `{'loss': (...,), 'error': (...,)}`, averaged over the example axis only.
  """
  return {
      "loss": jnp.mean(per_example_loss(logits, labels), axis=-1),
      "error": jnp.mean(per_example_error(logits, labels), axis=-1),
  }


def forget_gap(forget_value: jax.Array, heldout_value: jax.Array,
               absolute: bool = False) -> jax.Array:
  """Forget-minus-held-out difference of a metric (e.g. error), per member.

  The held-out split is the validation set when tuning and the test set when reporting. The sign
  is kept by default because it carries the goal: for privacy the gap should be near 0 (forget
  examples look unseen), for bias removal it should be large and positive (forget examples are
  misclassified more than unseen data).

  Args:
    forget_value: metric on the forget set, any shape.
    heldout_value: the same metric on validation or test data, broadcastable to it.
    absolute: return |forget - held-out| (the privacy objective's term).
  """
  gap = jnp.asarray(forget_value) - jnp.asarray(heldout_value)
  return jnp.abs(gap) if absolute else gap


def finite_members(values: jax.Array) -> jax.Array:
  """True for each member (leading axis) whose values are all finite, `(S, ...) -> (S,)`."""
  values = jnp.asarray(values)
  return jnp.all(jnp.isfinite(values.reshape(values.shape[0], -1)), axis=-1)


def masked_mean_over_members(values: jax.Array, finite_mask: jax.Array | None = None) -> jax.Array:
  """Mean over the leading member axis that skips diverged members.

  A member is skipped where `finite_mask` is False or where its value is non-finite, so a NaN that
  slipped past the mask still cannot poison the average.

  Args:
    values: `(S, ...)` per-member values.
    finite_mask: optional `(S,)` (or broadcastable to `values`) booleans, True for members that
      trained without diverging.

  Returns:
    `values.shape[1:]` means; NaN wherever every member was skipped (all diverged), so an empty
    average is visible instead of looking like 0.
  """
  values = jnp.asarray(values)
  keep = jnp.isfinite(values)
  if finite_mask is not None:
    mask = jnp.asarray(finite_mask, bool)
    # A (S,) mask names members: align it with the leading axis, not the trailing one.
    mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    keep = keep & mask
  count = jnp.sum(keep, axis=0)
  total = jnp.sum(jnp.where(keep, values, 0.0), axis=0)
  return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)
