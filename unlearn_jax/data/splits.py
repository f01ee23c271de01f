"""Train/validation/test splits, forget and retain sets, label noise.

All index sets are seeded with their own `numpy.random.default_rng` so they never depend on
global state, and are returned sorted so that they are easy to compare and to save.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from unlearn_jax.data.sources import Dataset

FORGET_MODES = ("uniform", "classes", "whole_classes")


@dataclasses.dataclass(frozen=True)
class Splits:
  """Arrays of one experiment: train (= retain + forget), validation, test.

  `forget_idx` and `retain_idx` index into `x_train`; together they partition it.
  `y_train` carries any label noise; `y_train_clean` the labels before it.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  y_train_clean: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  forget_idx: np.ndarray
  retain_idx: np.ndarray
  num_classes: int

  def summary(self) -> dict[str, int]:
    return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test),
            "forget": len(self.forget_idx), "retain": len(self.retain_idx)}


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Splits indices into (kept, held out) with `round(fraction * n_c)` held out per class c."""
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"validation fraction must be in [0, 1), got {fraction}.")
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    held.append(rng.choice(idx, size=int(round(fraction * len(idx))), replace=False))
  held = np.sort(np.concatenate(held)).astype(np.int64)
  kept = np.setdiff1d(np.arange(len(labels)), held)
  return kept, held


def make_forget_set(labels: np.ndarray, size: int, seed: int, mode: str = "uniform",
                    classes: Sequence[int] = (), num_classes: int | None = None) -> np.ndarray:
  """Chooses forget-set indices into `labels`, sorted.

  Args:
    labels: labels of the pool the forget set is drawn from (the train split).
    size: number of examples; ignored for mode 'whole_classes'.
    seed: seed of the draw.
    mode: 'uniform' (size examples from the whole pool), 'classes' (size examples from the
      examples of `classes`), or 'whole_classes' (every example of `classes`).
    classes: classes for the 'classes' and 'whole_classes' modes.
    num_classes: number of classes, to validate `classes`; defaults to max(labels) + 1.
  """
  num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
  if mode not in FORGET_MODES:
    raise ValueError(f"Unknown forget-set mode {mode!r}; allowed: {FORGET_MODES}.")
  if mode == "uniform":
    pool = np.arange(len(labels))
  else:
    if not classes:
      raise ValueError(f"forget-set mode {mode!r} needs a non-empty list of classes.")
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
      raise ValueError(f"Unknown forget classes {bad}; classes are 0..{num_classes - 1}.")
    pool = np.flatnonzero(np.isin(labels, classes))
    if mode == "whole_classes":
      return pool.astype(np.int64)
  if size < 0:
    raise ValueError(f"forget-set size must be >= 0, got {size}.")
  if size > len(pool):
    raise ValueError(f"forget-set size {size} is larger than its pool of {len(pool)} examples "
                     f"(mode {mode!r}{', classes ' + str(list(classes)) if classes else ''}).")
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(pool, size=size, replace=False)).astype(np.int64)


def add_label_noise(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
  """Flips `round(fraction * n_c)` labels of each class c to a uniformly drawn different class."""
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"label-noise fraction must be in [0, 1], got {fraction}.")
  rng = np.random.default_rng(seed)
  noisy = labels.copy()
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)
    flip = rng.choice(idx, size=int(round(fraction * len(idx))), replace=False)
    # Adding 1..C-1 modulo C always lands on a different class, uniformly.
    noisy[flip] = (c + rng.integers(1, num_classes, size=len(flip))) % num_classes
  return noisy


def make_splits(dataset: Dataset, *, val_fraction: float = 0.2, forget_size: int = 200,
                forget_mode: str = "uniform", forget_classes: Sequence[int] = (),
                label_noise: float = 0.0, seed: int = 0) -> Splits:
  """Holds out a stratified validation set, optionally adds label noise, picks the forget set."""
  kept, held = stratified_holdout(dataset.y_train, val_fraction, seed)
  y_clean = dataset.y_train[kept]
  y_train = (add_label_noise(y_clean, label_noise, dataset.num_classes, seed + 1)
             if label_noise else y_clean)
  forget_idx = make_forget_set(y_train, forget_size, seed + 2, forget_mode, forget_classes,
                               dataset.num_classes)
  retain_idx = np.setdiff1d(np.arange(len(y_train)), forget_idx).astype(np.int64)
  return Splits(dataset.x_train[kept], y_train, y_clean, dataset.x_train[held],
                dataset.y_train[held], dataset.x_test, dataset.y_test, forget_idx, retain_idx,
                dataset.num_classes)
