"""Run set-up shared by stages: JAX options, data on device, width buckets."""
from __future__ import annotations

import logging
import os
from typing import Sequence

import jax
import jax.numpy as jnp

from unlearn_jax import data as data_lib


def configure_jax(config) -> None:
  """Enables the persistent compilation cache (large start-up savings at small widths)."""
  cache_dir = os.path.expanduser(config.get("compilation_cache_dir", "") or "")
  if cache_dir:
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def load_splits(config) -> data_lib.Splits:
  d = config.dataset
  dataset = data_lib.load(d.name, **dict(d.kwargs))
  splits = data_lib.make_splits(dataset, val_fraction=d.val_fraction, forget_size=d.forget_size,
                                forget_mode=d.forget_mode, forget_classes=tuple(d.forget_classes),
                                label_noise=d.label_noise, seed=d.split_seed)
  logging.info("data %s: %s", d.name, splits.summary())
  return splits


def device_data(splits: data_lib.Splits) -> dict:
  """The training split on device; every member indexes into it."""
  return {"x": jnp.asarray(splits.x_train), "y": jnp.asarray(splits.y_train)}


def width_buckets(widths: Sequence[float], max_ratio: float) -> list[tuple[float, ...]]:
  """Groups sorted widths greedily so that widest/narrowest <= max_ratio within a bucket.

  Every member of a bucket runs at the bucket's widest shape, so the ratio bounds the waste.
  """
  if not widths:
    raise ValueError("config.widths is empty.")
  if any(w <= 0 for w in widths):
    raise ValueError(f"widths must be positive, got {tuple(widths)}.")
  buckets: list[list[float]] = []
  for w in sorted(set(widths)):
    if buckets and w <= buckets[-1][0] * max_ratio:
      buckets[-1].append(w)
    else:
      buckets.append([w])
  return [tuple(b) for b in buckets]
