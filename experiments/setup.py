"""Run set-up shared by stages: JAX options, and the data with its scenario, checked up front."""
from __future__ import annotations

import logging
import os

import jax

from unlearn_jax import data as data_lib
from unlearn_jax.data import scenarios


def configure_jax(config) -> None:
  """Enables the persistent compilation cache (large start-up savings at small widths)."""
  cache_dir = os.path.expanduser(config.get("compilation_cache_dir", "") or "")
  if cache_dir:
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    # Every program: the sweep compiles hundreds at 0.05-0.5 s each; with a 0.1 s threshold
    # about 390 of its 727 programs were compiled again on every run (13 s at the 3-seed x
    # 7-width settings), while reading one from the cache takes milliseconds.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def load_splits(config) -> tuple[data_lib.Splits, scenarios.Scenario]:
  d = config.dataset
  dataset = data_lib.load(d.name, **dict(d.kwargs))
  splits = data_lib.make_splits(dataset, val_fraction=d.val_fraction, forget_size=d.forget_size,
                                forget_mode=d.forget_mode, forget_classes=tuple(d.forget_classes),
                                label_noise=d.label_noise, seed=d.split_seed)
  splits, scenario = scenarios.apply_scenario(splits, d.get("scenario", "none"), d.split_seed,
                                              d.get("backdoor_target", 0))
  logging.info("data %s (scenario %s): %s", d.name, scenario.name, splits.summary())
  return splits, scenario


def check_sizes(config, splits) -> None:
  """Data shapes and sizes against the model and batch sizes, before anything compiles."""
  data_lib.check_model_input(splits.x_train.shape, config.model.name, config.train.augment)
  data_lib.check_sizes(splits, train_batch_size=config.train.batch_size,
                       unlearn_batch_size=config.unlearn.batch_size)
  # Decision-region planes go through triplets of distinct examples of each family.
  for family, size in (("forget", len(splits.forget_idx)), ("test", len(splits.y_test))):
    if size < 3:
      raise ValueError(f"the {family} set has {size} example(s); decision-region planes need at "
                       f"least 3 (raise config.dataset.forget_size or use a larger test set).")
