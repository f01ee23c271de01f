"""Shared by the sweep tests: the small config they run, and results as comparable values."""
from configs import smoke

METHODS = ("retrain", "scrub", "neggrad_plus", "l1_sparse")


def config():
  c = smoke.get_config()
  c.compilation_cache_dir = ""
  c.train.epochs, c.train.checkpoint_every = 4, 1
  c.unlearn.methods = METHODS
  return c


def values(rows):
  return {(r["stage"], r["method"], r["width"], r["seed"], r["hparams"], r["goal"], r["lam"],
           r["split"], r["metric"]): float(r["value"]) for r in rows}
