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

import jax.numpy as jnp
import numpy as np

from unlearn_jax import train as train_lib
from unlearn_jax.evaluation import metrics as metrics_lib
from unlearn_jax.evaluation import mia, reference_gaps

GAP_METRICS = (("retain", "error"), ("forget", "error"), ("test", "error"), ("forget", "mia_loss"))


def predict_splits(model, params, batch_stats, splits, batch_size: int, strategy) -> dict:
  """Logits (S, N, C) on retain, forget, val and test."""
  predict = lambda x: train_lib.predict_logits(model, params, batch_stats, jnp.asarray(x),
                                               batch_size=batch_size, strategy=strategy)
  train_logits = predict(splits.x_train)
  return {"retain": train_logits[:, splits.retain_idx], "forget": train_logits[:, splits.forget_idx],
          "val": predict(splits.x_val), "test": predict(splits.x_test)}


def split_labels(splits) -> dict:
  return {"retain": splits.y_train[splits.retain_idx], "forget": splits.y_train[splits.forget_idx],
          "val": splits.y_val, "test": splits.y_test}


def evaluate_members(logits: dict, splits, *, mia_max_train: int = 1000, seed: int = 0,
                     retrained_pred: dict | None = None) -> tuple[dict, dict]:
  """Returns ({(split, metric): (S,)}, predicted labels {split: (S, N)})."""
  labels = split_labels(splits)
  out, preds = {}, {}
  for split, lg in logits.items():
    m = metrics_lib.split_metrics(lg, labels[split])
    out[(split, "error")], out[(split, "loss")] = np.asarray(m["error"]), np.asarray(m["loss"])
    preds[split] = np.asarray(metrics_lib.predicted_labels(lg))
  n_r, n_f = len(labels["retain"]), len(labels["forget"])
  out[("train", "error")] = (n_r * out[("retain", "error")] + n_f * out[("forget", "error")]) / (n_r + n_f)
  out[("forget", "gap_val")] = out[("forget", "error")] - out[("val", "error")]
  loss = {s: np.asarray(metrics_lib.per_example_loss(logits[s], labels[s])) for s in logits}
  conf = {s: np.asarray(metrics_lib.true_class_confidence(logits[s], labels[s])) for s in logits}
  out[("forget", "mia_loss")] = mia.per_member(
      mia.loss_mia_accuracy, dict(forget_losses=loss["forget"], test_losses=loss["test"]),
      forget_labels=labels["forget"], test_labels=labels["test"], seed=seed)
  out[("forget", "mia_efficacy")] = mia.per_member(
      mia.mia_efficacy, dict(retain_conf=conf["retain"], test_conf=conf["test"],
                             forget_conf=conf["forget"]), seed=seed, max_train=mia_max_train)
  if retrained_pred is not None:
    for split in ("forget", "test"):
      out[(split, "agree_retrained")] = np.asarray(
          reference_gaps.prediction_agreement(preds[split], retrained_pred[split]))
  return out, preds


def add_avg_gap(metrics: dict, retrained: dict) -> None:
  """Adds (all, avg_gap): the mean absolute gap to the paired retrained model over GAP_METRICS."""
  gaps = reference_gaps.reference_gaps({f"{s}_{m}": metrics[(s, m)] for s, m in GAP_METRICS},
                                       {f"{s}_{m}": retrained[(s, m)] for s, m in GAP_METRICS})
  metrics[("all", "avg_gap")] = np.asarray(gaps["avg_gap"])


def save_metrics(path: str, metrics: dict, members: list[dict]) -> None:
  payload = {"members": members,
             "metrics": [{"split": s, "metric": m, "values": [float(v) for v in vals]}
                         for (s, m), vals in metrics.items()]}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f)
  os.replace(tmp, path)


def load_metrics(path: str) -> tuple[dict, list[dict]] | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    payload = json.load(f)
  metrics = {(e["split"], e["metric"]): np.asarray(e["values"], np.float64)
             for e in payload["metrics"]}
  return metrics, payload["members"]
