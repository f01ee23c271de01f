"""Stage: per-member metrics of any member-stacked set of models (original, retrained, unlearned).

Metrics are keyed (split, metric) and hold one value per member:
  (retain|forget|val|test, error|loss), (forget, gap_val) = forget error - validation error,
  (forget, mia_loss) SCRUB's loss attack accuracy (0.5 ideal), (forget, mia_efficacy) SalUn's
  SVC attack, and, when the retrained reference's predictions are given,
  (forget|test, agree_retrained) prediction agreement with the retrained model of the same
  (seed, width).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import train as train_lib
from unlearn_jax.evaluation import metrics as metrics_lib
from unlearn_jax.evaluation import bias_scenarios, mia, reference_gaps

GAP_METRICS = (("retain", "error"), ("forget", "error"), ("test", "error"), ("forget", "mia_loss"))


def predict_splits(model, params, batch_stats, splits, batch_size: int, strategy,
                   scenario=None) -> dict:
  """Logits (S, N, C) on retain, forget, val and test (and the triggered test set)."""
  predict = lambda x: train_lib.predict_logits(model, params, batch_stats, jnp.asarray(x),
                                               batch_size=batch_size, strategy=strategy)
  train_logits = predict(splits.x_train)
  out = {"retain": train_logits[:, splits.retain_idx], "forget": train_logits[:, splits.forget_idx],
         "val": predict(splits.x_val), "test": predict(splits.x_test)}
  if scenario is not None and scenario.x_test_triggered is not None:
    out["test_triggered"] = predict(scenario.x_test_triggered)
  return out


def split_labels(splits) -> dict:
  """Labels the errors are measured against; forget labels are the (possibly flipped) train ones."""
  return {"retain": splits.y_train[splits.retain_idx], "forget": splits.y_train[splits.forget_idx],
          "val": splits.y_val, "test": splits.y_test, "test_triggered": splits.y_test}


@jax.jit
def _per_example(logits, labels):
  # One compiled function per split shape instead of one per eager op.
  return {"loss": metrics_lib.per_example_loss(logits, labels),
          "error": metrics_lib.per_example_error(logits, labels),
          "confidence": metrics_lib.true_class_confidence(logits, labels),
          "pred": metrics_lib.predicted_labels(logits),
          "logit_conf": metrics_lib.logit_scaled_confidence(logits, labels)}


def evaluate_members(logits: dict, splits, *, mia_max_train: int = 1000, seed: int = 0,
                     retrained_pred: dict | None = None, scenario=None
                     ) -> tuple[dict, dict, np.ndarray]:
  """Per-member metrics of member-stacked logits.

  Returns:
    ({(split, metric): (S,)}, predicted labels {split: (S, N)}, the forget examples' logit-scaled
    confidences (S, n_forget), the statistic of the epsilon score).
  """
  labels = split_labels(splits)
  stats = {s: jax.tree.map(np.asarray, _per_example(lg, labels[s])) for s, lg in logits.items()}
  out = {}
  for split, st in stats.items():
    out[(split, "error")], out[(split, "loss")] = st["error"].mean(-1), st["loss"].mean(-1)
  n_r, n_f = len(labels["retain"]), len(labels["forget"])
  out[("train", "error")] = ((n_r * out[("retain", "error")] + n_f * out[("forget", "error")])
                             / (n_r + n_f))
  out[("forget", "gap_val")] = out[("forget", "error")] - out[("val", "error")]
  out[("forget", "mia_loss")] = mia.per_member(
      mia.loss_mia_accuracy,
      dict(forget_losses=stats["forget"]["loss"], test_losses=stats["test"]["loss"]),
      forget_labels=labels["forget"], test_labels=labels["test"], seed=seed)
  out[("forget", "mia_efficacy")] = mia.per_member(
      mia.mia_efficacy, dict(retain_conf=stats["retain"]["confidence"],
                             test_conf=stats["test"]["confidence"],
                             forget_conf=stats["forget"]["confidence"]),
      seed=seed, max_train=mia_max_train, workers=os.cpu_count() or 1)
  preds = {s: st["pred"] for s, st in stats.items()}
  if scenario is not None and scenario.name == "mislabeled":
    true = splits.y_train_clean[splits.forget_idx]
    out[("forget", "true_label_recovery")] = np.asarray(
        bias_scenarios.true_label_recovery(preds["forget"], true))
  if scenario is not None and scenario.name == "backdoor":
    out[("test", "attack_success")] = np.asarray(bias_scenarios.attack_success_rate(
        preds["test_triggered"], splits.y_test, scenario.target))
  if retrained_pred is not None:
    for split in ("forget", "test"):
      out[(split, "agree_retrained")] = np.asarray(
          reference_gaps.prediction_agreement(preds[split], retrained_pred[split]))
  return out, preds, stats["forget"]["logit_conf"]


def add_avg_gap(metrics: dict, retrained: dict) -> None:
  """Adds (all, avg_gap): the mean absolute gap to the paired retrained model over GAP_METRICS."""
  gaps = reference_gaps.reference_gaps({f"{s}_{m}": metrics[(s, m)] for s, m in GAP_METRICS},
                                       {f"{s}_{m}": retrained[(s, m)] for s, m in GAP_METRICS})
  metrics[("all", "avg_gap")] = np.asarray(gaps["avg_gap"])


def save_metrics(path: str, metrics: dict, members: list[dict], forget_conf=None) -> None:
  """Writes per-member metrics as JSON (and the forget confidences beside it as .npy)."""
  if forget_conf is not None:
    np.save(path + ".forget_conf.npy", np.asarray(forget_conf))
  payload = {"members": members,
             "metrics": [{"split": s, "metric": m, "values": [float(v) for v in vals]}
                         for (s, m), vals in metrics.items()]}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f)
  os.replace(tmp, path)


def load_metrics(path: str) -> tuple[dict, list[dict], np.ndarray | None] | None:
  if not os.path.exists(path):
    return None
  conf_path = path + ".forget_conf.npy"
  conf = np.load(conf_path) if os.path.exists(conf_path) else None
  with open(path) as f:
    payload = json.load(f)
  metrics = {(e["split"], e["metric"]): np.asarray(e["values"], np.float64)
             for e in payload["metrics"]}
  return metrics, payload["members"], conf
