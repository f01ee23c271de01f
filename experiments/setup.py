"""Run set-up shared by stages: JAX options, data on device, width buckets."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Hashable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import data as data_lib
from unlearn_jax.evaluation import bias_scenarios


def configure_jax(config) -> None:
  """Enables the persistent compilation cache (large start-up savings at small widths)."""
  cache_dir = os.path.expanduser(config.get("compilation_cache_dir", "") or "")
  if cache_dir:
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


SCENARIOS = ("none", "mislabeled", "backdoor")


@dataclasses.dataclass(frozen=True)
class Scenario:
  """A forget set with ground truth (beyond the study): what success of bias removal means.

  'mislabeled': the forget examples' labels were flipped to another class; `splits.y_train_clean`
  holds the true ones. 'backdoor': the forget examples carry a trigger and the label `target`;
  `x_test_triggered` is the test set with the trigger, for the attack success rate.
  """
  name: str = "none"
  target: int = 0
  x_test_triggered: np.ndarray | None = None


def load_splits(config) -> tuple[data_lib.Splits, Scenario]:
  d = config.dataset
  dataset = data_lib.load(d.name, **dict(d.kwargs))
  splits = data_lib.make_splits(dataset, val_fraction=d.val_fraction, forget_size=d.forget_size,
                                forget_mode=d.forget_mode, forget_classes=tuple(d.forget_classes),
                                label_noise=d.label_noise, seed=d.split_seed)
  splits, scenario = apply_scenario(splits, d.get("scenario", "none"), d.split_seed,
                                    d.get("backdoor_target", 0))
  logging.info("data %s (scenario %s): %s", d.name, scenario.name, splits.summary())
  return splits, scenario


def apply_scenario(splits: data_lib.Splits, name: str, seed: int, target: int = 0
                   ) -> tuple[data_lib.Splits, Scenario]:
  """Turns the forget set into mislabeled or backdoored examples (see `Scenario`)."""
  if name not in SCENARIOS:
    raise ValueError(f"Unknown scenario {name!r}; allowed: {SCENARIOS}.")
  if name == "none":
    return splits, Scenario()
  if name == "mislabeled":
    y = np.asarray(bias_scenarios.flip_labels(splits.y_train, splits.forget_idx,
                                              splits.num_classes, seed))
    return dataclasses.replace(splits, y_train=y.astype(splits.y_train.dtype)), Scenario(name)
  if not 0 <= target < splits.num_classes:
    raise ValueError(f"backdoor target {target} is not a class (0..{splits.num_classes - 1}).")
  x, y = bias_scenarios.poison(splits.x_train, splits.y_train, splits.forget_idx, target)
  triggered = np.asarray(bias_scenarios.add_trigger(splits.x_test))
  return (dataclasses.replace(splits, x_train=np.asarray(x), y_train=np.asarray(y)),
          Scenario(name, target, triggered))


def device_data(splits: data_lib.Splits) -> dict:
  """The training split on device; every member indexes into it."""
  return {"x": jnp.asarray(splits.x_train), "y": jnp.asarray(splits.y_train)}


def width_buckets(widths: Sequence[float], max_ratio: float,
                  structure: Callable[[float], Hashable] | None = None
                  ) -> list[tuple[float, ...]]:
  """Groups sorted widths greedily so that widest/narrowest <= max_ratio within a bucket.

  Every member of a bucket runs at the bucket's widest shape, so the ratio bounds the waste.
  With `structure` (width -> e.g. its variables' tree structure), a bucket also holds only
  widths of equal structure: only those can be zero-padded into each other.
  """
  if not widths:
    raise ValueError("config.widths is empty.")
  if any(w <= 0 for w in widths):
    raise ValueError(f"widths must be positive, got {tuple(widths)}.")
  buckets: list[list[float]] = []
  for w in sorted(set(widths)):
    if (buckets and w <= buckets[-1][0] * max_ratio
        and (structure is None or structure(w) == structure(buckets[-1][0]))):
      buckets[-1].append(w)
    else:
      buckets.append([w])
  return [tuple(b) for b in buckets]
