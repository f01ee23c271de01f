"""Distance of an unlearned model to the retrained-from-scratch reference.

Retraining on the retain set is the gold standard, so a common summary (SalUn, "Avg. Gap") is the
mean absolute difference between the unlearned and the retrained model over a few metrics, e.g.
retain/forget/test error and an MIA score. Prediction agreement is the per-example counterpart:
how often the two models predict the same label on a split.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp


def reference_gaps(unlearned: Mapping[str, jax.Array], retrained: Mapping[str, jax.Array],
                   keys: Sequence[str] | None = None) -> dict[str, jax.Array]:
  """Absolute per-metric gaps to the retrained reference and their mean.

  Values broadcast, which sets how members are paired: pass `(S,)` arrays on both sides to pair
  member s with retrained model s (e.g. same seed), or a scalar reference (the retrained models'
  mean) to compare every unlearned member with it. A NaN (diverged) member gives NaN gaps for that
  member only; aggregate with `metrics.masked_mean_over_members`.

  Args:
    unlearned: metric name -> per-member values, e.g. `{'retain_error', 'forget_error',
      'test_error', 'mia'}`.
    retrained: the same names for the retrained reference.
    keys: metrics to compare; default: the names present in both dicts, in `unlearned`'s order.

  Returns:
    `{'<name>_gap': |unlearned - retrained|, ..., 'avg_gap': mean of those gaps}`.

  Raises:
    KeyError: a requested key is missing on either side.
    ValueError: no metric to compare.
  """
  if keys is None:
    keys = [name for name in unlearned if name in retrained]
  missing = [name for name in keys if name not in unlearned or name not in retrained]
  if missing:
    raise KeyError(f"metrics {missing} missing from the unlearned or retrained dict "
                   f"(unlearned has {sorted(unlearned)}, retrained has {sorted(retrained)})")
  if not keys:
    raise ValueError("no metric in common between the unlearned and retrained dicts")
  gaps = {f"{name}_gap": jnp.abs(jnp.asarray(unlearned[name], jnp.float32)
                                 - jnp.asarray(retrained[name], jnp.float32))
          for name in keys}
  gaps["avg_gap"] = jnp.mean(jnp.stack(jnp.broadcast_arrays(*gaps.values())), axis=0)
  return gaps


def prediction_agreement(labels_a: jax.Array, labels_b: jax.Array) -> jax.Array:
  """Fraction of examples on which two models predict the same label.

  Args:
    labels_a: `(..., N)` predicted labels (see `metrics.predicted_labels`).
    labels_b: `(..., N)`, broadcastable against `labels_a` (e.g. `(N,)` for a single reference).

  Returns:
    `(...)` agreement in [0, 1], averaged over the example axis.
  """
  return jnp.mean((jnp.asarray(labels_a) == jnp.asarray(labels_b)).astype(jnp.float32), axis=-1)
