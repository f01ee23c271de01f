"""Train/validation/test splits, forget and retain sets, label noise.

All index sets are seeded with their own `numpy.random.default_rng` so they never depend on
global state, and are returned sorted so that they are easy to compare and to save.
"""
from __future__ import annotations

import dataclasses
import hashlib
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


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def make_forget_set(labels: np.ndarray, size: int, seed: int, mode: str = "uniform",
                    classes: Sequence[int] = (), num_classes: int | None = None) -> np.ndarray:
  """Chooses forget-set indices into `labels`, sorted.

  The forget set is never empty and always leaves at least one retain example in its pool: an
  empty forget set or an empty retain set has nothing to unlearn or nothing to compare with, and
  fails much later inside an evaluator. Messages name the `config.dataset` fields to change.

  Args:
    labels: labels of the pool the forget set is drawn from (the train split).
    size: number of examples, 1 <= size < pool size; ignored for mode 'whole_classes'.
    seed: seed of the draw.
    mode: 'uniform' (size examples from the whole pool), 'classes' (size examples from the
      examples of `classes`, some of which stay in the retain set), or 'whole_classes' (every
      example of `classes`).
    classes: classes for the 'classes' and 'whole_classes' modes; must be empty for 'uniform'.
    num_classes: number of classes, to validate `classes`; defaults to max(labels) + 1.

  Raises:
    ValueError: on an unknown mode, bad classes, or a size outside [1, pool size - 1].
  """
  labels = np.asarray(labels)
  if num_classes is None:
    num_classes = int(labels.max()) + 1 if labels.size else 0
  if mode not in FORGET_MODES:
    raise ValueError(f"Unknown forget-set mode {mode!r} (config.dataset.forget_mode); allowed: "
                     f"{FORGET_MODES}.")
  classes = tuple(classes)
  setting = f"config.dataset.forget_mode={mode!r}"
  if mode == "uniform":
    if classes:
      raise ValueError(
          f"config.dataset.forget_classes={list(classes)} is set, but {setting} draws from every "
          f"class and would ignore it. Set config.dataset.forget_mode='classes' (forget_size "
          f"examples of those classes) or 'whole_classes' (all their examples), or set "
          f"config.dataset.forget_classes=().")
    pool = np.arange(len(labels))
    pool_name = "the whole training split"
  else:
    if not classes:
      raise ValueError(f"forget-set mode {mode!r} needs a non-empty list of classes: set "
                       f"config.dataset.forget_classes, e.g. (0,).")
    bad = [c for c in classes if not _is_int(c) or not 0 <= c < num_classes]
    if bad:
      raise ValueError(f"Unknown forget classes {bad} (config.dataset.forget_classes); classes "
                       f"are the integers 0..{num_classes - 1}.")
    setting += f", config.dataset.forget_classes={list(classes)}"
    pool = np.flatnonzero(np.isin(labels, classes))
    pool_name = f"the training examples of classes {list(classes)}"
    if mode == "whole_classes":
      if len(pool) == 0:
        raise ValueError(f"The forget set is empty ({setting}): the training split has no "
                         f"examples of these classes. Choose classes that occur in it.")
      if len(pool) == len(labels):
        raise ValueError(f"The forget set would be the whole training split of {len(labels)} "
                         f"examples ({setting}), leaving no retain example. Forget fewer "
                         f"classes.")
      return pool.astype(np.int64)
  if not _is_int(size) or size < 1:
    raise ValueError(f"config.dataset.forget_size={size!r} ({setting}): the forget set needs an "
                     f"integer size >= 1 that leaves at least one retain example in its pool, "
                     f"{pool_name} of {len(pool)} examples, so at most {len(pool) - 1}.")
  if size >= len(pool):
    if mode == "classes":
      fix = ("Lower config.dataset.forget_size, or set config.dataset.forget_mode='whole_classes' "
             "to forget every example of those classes.")
    else:
      fix = ("Lower config.dataset.forget_size, or lower config.dataset.val_fraction / use more "
             "data.")
    allowed = (f"between 1 and {len(pool) - 1}" if len(pool) >= 2 else
               "at least 1 with a retain example left, which a pool this small cannot give")
    raise ValueError(
        f"config.dataset.forget_size={size} ({setting}) is not smaller than its pool of "
        f"{len(pool)} examples, {pool_name}: at least one of them must stay in the retain set, so "
        f"forget_size must be {allowed}. {fix}")
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


def fingerprint(splits: Splits) -> str:
  """A digest of every array of `splits` (and num_classes): equal content, equal digest.

  Caches keyed by it notice a user's .npz changed in place, which a file name or config cannot.
  Fields are hashed in declaration order with their name, dtype and shape, so arrays of the same
  bytes but another shape or dtype differ too. Deterministic across processes (sha256 of raw
  bytes, no Python hash), and fast: the arrays are hashed in place, ~20 MB in tens of ms.

  Returns:
    The first 16 hex digits of the sha256.
  """
  h = hashlib.sha256()
  for field in dataclasses.fields(splits):
    value = getattr(splits, field.name)
    h.update(f"\0{field.name}\0".encode())
    if isinstance(value, np.generic):
      value = value.item()  # so num_classes=np.int64(10) hashes like 10
    if isinstance(value, (int, float, str, bool, type(None))):
      h.update(repr(value).encode())
      continue
    array = np.ascontiguousarray(np.asarray(value))
    h.update(f"{array.dtype.str}{array.shape}\0".encode())
    h.update(array.reshape(-1).view(np.uint8) if array.size else b"")
  return h.hexdigest()[:16]
