"""Stage: hyperparameters selected per (original, goal, lambda) on validation data alone.

A pure function of the evaluate stage's cached metrics, so it needs no cache of its own.
"""
from __future__ import annotations

import logging

import numpy as np

from unlearn_jax.evaluation import tuning


def run(metrics: dict, origin, reference_metrics: dict, goal: str, lam: float, what: str = ""
        ) -> np.ndarray:
  """Member index chosen for each original whose grid has a usable point (diverged: skipped).

  Members are original-major (member o * G + g is original o at grid point g);
  `reference_metrics` are the retrained references' (one per original, same order), which the
  retrain-matching goal compares with.
  """
  num_originals = len(reference_metrics[("val", "error")])
  grid = len(origin) // num_originals
  errors = {split: metrics[(split, "error")].reshape(num_originals, grid)
            for split in tuning.REFERENCE_SPLITS}
  reference = {split: np.asarray(reference_metrics[(split, "error")])[:, None]
               for split in tuning.REFERENCE_SPLITS}
  best = tuning.select(goal, lam, val_error=errors["val"], forget_error=errors["forget"],
                       retain_error=errors["retain"], reference=reference)
  chosen = np.where(best >= 0, np.arange(num_originals) * grid + best, -1)
  if not (chosen >= 0).all():
    logging.warning("%s goal %s lambda %g: every grid point diverged for originals %s", what,
                    goal, lam, np.flatnonzero(chosen < 0).tolist())
  return chosen[chosen >= 0]


def degenerate(val_error, original_val_error, num_classes: int, fraction: float) -> np.ndarray:
  """1.0 where a model's validation error lies more than `fraction` of the way from its
  original's validation error to chance (1 - 1/num_classes), else 0.0 (NaN stays NaN).

  Such a model has given up most of what it learned; a goal it reaches that way (e.g. a high
  forget error) is not evidence for any finding.
  """
  chance = 1.0 - 1.0 / num_classes
  val_error, original_val_error = np.asarray(val_error), np.asarray(original_val_error)
  flag = (val_error > original_val_error + fraction * (chance - original_val_error))
  return np.where(np.isfinite(val_error), flag.astype(np.float64), np.nan)
