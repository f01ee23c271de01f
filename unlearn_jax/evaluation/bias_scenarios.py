"""Ground-truth metrics of the bias-removal scenarios: mislabeled and backdoored forget sets.

The scenarios themselves (label flips, triggers, `apply_scenario`) are data: see
`unlearn_jax.data.scenarios`. Here, what success means:

* Mislabeled: after unlearning the model should stop predicting the wrong labels
  (`flipped_label_error` high) and, ideally, predict the true ones (`true_label_recovery`).
* Backdoor: the attack success rate (`attack_success_rate`) on triggered test inputs should come
  down to chance.

All metrics accept a leading member axis on predictions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def true_label_recovery(pred_forget, true_labels_forget) -> jax.Array:
  """Fraction of mislabeled forget examples predicted as their TRUE label, per member."""
  return jnp.mean((jnp.asarray(pred_forget) == jnp.asarray(true_labels_forget))
                  .astype(jnp.float32), axis=-1)


def flipped_label_error(pred_forget, flipped_labels_forget) -> jax.Array:
  """Error against the flipped (wrong) labels on the forget set, per member (higher = removed)."""
  return jnp.mean((jnp.asarray(pred_forget) != jnp.asarray(flipped_labels_forget))
                  .astype(jnp.float32), axis=-1)


def attack_success_rate(pred_on_triggered_test, test_labels, target: int) -> jax.Array:
  """Fraction of triggered test inputs classified as `target`, among those whose TRUE label is not
  the target (otherwise correct predictions would count as attack successes).

  Args:
    pred_on_triggered_test: `(..., N)` predictions on `scenarios.add_trigger(x_test)`.
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
