"""The width sweep as a library function: `run(config, workdir)`.

Stages (each resumable from the workdir):
  1. originals: per width bucket, every (seed, width) trained on the train split;
  2. retrained: the same members trained from scratch on the retain set (the reference);
  then per-member errors/losses on train, retain, forget, validation and test.
"""
from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import results, setup
from experiments.training_stage import TrainedBucket, train_bucket
from unlearn_jax import train as train_lib


def split_errors(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
  """Per-member error and cross-entropy of logits (S, N, C) against labels (N,)."""
  logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
  loss = -np.take_along_axis(logp, labels[None, :, None], axis=-1)[..., 0].mean(-1)
  return {"error": (logits.argmax(-1) != labels).mean(-1), "loss": loss}


def evaluate_bucket(bucket: TrainedBucket, splits, batch_size: int) -> dict[str, dict]:
  """{split: {metric: (S,)}} for train, retain, forget, val, test."""
  predict = lambda x: train_lib.predict_logits(
      bucket.model, bucket.state.params, bucket.state.batch_stats, jnp.asarray(x),
      batch_size=batch_size, strategy=bucket.strategy)
  train_logits = predict(splits.x_train)
  return {
      "train": split_errors(train_logits, splits.y_train),
      "retain": split_errors(train_logits[:, splits.retain_idx], splits.y_train[splits.retain_idx]),
      "forget": split_errors(train_logits[:, splits.forget_idx], splits.y_train[splits.forget_idx]),
      "val": split_errors(predict(splits.x_val), splits.y_val),
      "test": split_errors(predict(splits.x_test), splits.y_test),
  }


def run(config, workdir: str) -> dict:
  """Runs every stage; returns {'rows': result rows, 'wall_s': seconds}."""
  start = time.time()
  os.makedirs(workdir, exist_ok=True)
  setup.configure_jax(config)
  splits = setup.load_splits(config)
  data = setup.device_data(splits)
  sample_x = jnp.asarray(splits.x_train[:2])
  rows = []
  for bucket_widths in setup.width_buckets(config.widths, config.bucket_max_ratio):
    for stage, pool, stream in (("original", np.arange(len(splits.y_train)), 0),
                                ("retrained", splits.retain_idx, 1)):
      bucket = train_bucket(config, stage, bucket_widths, data, pool, stream, workdir, sample_x,
                            splits.num_classes)
      metrics = evaluate_bucket(bucket, splits, config.eval_batch_size)
      for i, m in enumerate(bucket.members):
        for split, values in metrics.items():
          for metric, v in values.items():
            rows.append(results.row(stage=stage, method=stage, width=m.width, seed=m.seed,
                                    split=split, metric=metric, value=float(v[i])))
  results.write_csv(os.path.join(workdir, "results.csv"), rows)
  wall = time.time() - start
  with open(os.path.join(workdir, "run_info.json"), "w") as f:
    json.dump({"wall_s": wall, "backend": jax.default_backend(),
               "devices": jax.device_count(), "splits": splits.summary()}, f, indent=1)
  _log_summary(rows)
  logging.info("done in %.1fs; results in %s", wall, os.path.join(workdir, "results.csv"))
  return {"rows": rows, "wall_s": wall}


def _log_summary(rows) -> None:
  table: dict = {}
  for r in rows:
    if r["metric"] == "error" and r["split"] in ("train", "test"):
      table.setdefault((r["stage"], r["width"], r["split"]), []).append(r["value"])
  for (stage, width, split), v in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
    logging.info("%-9s width %-6s %-5s error %.3f +- %.3f", stage, width, split, np.nanmean(v),
                 np.nanstd(v))
