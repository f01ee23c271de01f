"""Stage: hyperparameters selected per (original, goal, lambda) on validation data alone.

A pure function of the evaluate stage's cached metrics, so it needs no cache of its own.
"""
from __future__ import annotations

import logging

import numpy as np

from unlearn_jax.evaluation import tuning


def run(metrics: dict, origin, num_originals: int, goal: str, lam: float, what: str = ""
        ) -> np.ndarray:
  """Member index chosen for each original whose grid has a usable point (diverged: skipped).

  Members are original-major (member o * G + g is original o at grid point g).
  """
  grid = len(origin) // num_originals
  val = metrics[("val", "error")].reshape(num_originals, grid)
  forget = metrics[("forget", "error")].reshape(num_originals, grid)
  best = tuning.select(goal, lam, val_error=val, forget_error=forget)
  chosen = np.where(best >= 0, np.arange(num_originals) * grid + best, -1)
  if not (chosen >= 0).all():
    logging.warning("%s goal %s lambda %g: every grid point diverged for originals %s", what,
                    goal, lam, np.flatnonzero(chosen < 0).tolist())
  return chosen[chosen >= 0]
