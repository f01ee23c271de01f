"""Checks that turn bad data and bad sizes into clear errors before anything is compiled.

Bad data rarely crashes a sweep: NaN inputs, float labels truncated to int, a class seen only at
test time or images read as signals all run to the end and give wrong numbers. So every check
here raises a `ValueError` naming the bad value, what is allowed and the fix.

These are pure functions of plain arguments (arrays, shapes, numbers), with no config objects, so
a notebook can call them as well as the sweep; the messages still name the config fields
(`config.train.batch_size`, ...) a user of the sweep would change.

`check_dataset` runs whenever a `Dataset` is built (every source, and hand-built datasets);
`check_sizes` and `check_model_input` need the batch sizes and the model, which only the caller
knows, so the caller runs them before it compiles anything.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# Models whose convolutions read the axes between the batch and the last as spatial axes.
CONV_MODELS = ("cnn", "preact_resnet18", "preact_resnet18_scrub")

_INT32_MAX = np.iinfo(np.int32).max


def class_indices(y: Any, name: str = "y") -> np.ndarray:
  """Returns labels `y` as int32 class indices, refusing anything that is not one index per example.

  Integer and boolean labels are accepted; float labels only if every value is a whole number
  (1.0 -> 1), because truncating 0.5 to 0 would silently relabel examples. 2-D labels (one-hot or
  probabilities) are refused rather than guessed at.

  Args:
    y: the labels, shape (N,).
    name: what to call them in messages, e.g. 'y_train'.

  Raises:
    ValueError: if `y` is not 1-D, not numeric, has non-whole or negative values, or values too
      large for int32.
  """
  y = np.asarray(y)
  if y.ndim != 1:
    if y.ndim == 2 and y.shape[1] == 1:
      fix = f"flatten them with {name}[:, 0]"
    elif y.ndim == 2:
      fix = (f"if they are one-hot or per-class probabilities, pass {name}.argmax(axis=1)")
    else:
      fix = "pass one class index per example"
    raise ValueError(f"{name} has shape {y.shape}; labels must be integer class indices of shape "
                     f"(N,) (0..num_classes-1), one per example: {fix}.")
  if y.dtype == np.bool_:
    return y.astype(np.int32)
  if np.issubdtype(y.dtype, np.floating):
    bad = ~np.isfinite(y) | (np.round(y) != y)
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      raise ValueError(
          f"{name} has {int(bad.sum())} labels that are not whole numbers, e.g. "
          f"{float(y[i])!r} at index {i}; labels must be integer class indices "
          f"0..num_classes-1 (they are not rounded or truncated, which would relabel examples). "
          f"Store class indices, e.g. {name}.argmax(axis=1) of soft labels, or "
          f"np.unique({name}, return_inverse=True)[1] to number arbitrary label values.")
  elif not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} has dtype {y.dtype}; labels must be integer class indices "
                     f"0..num_classes-1. Convert them, e.g. with np.unique({name}, "
                     f"return_inverse=True)[1].")
  if y.size and y.min() < 0:
    raise ValueError(f"{name} has negative labels (min {y.min().item()}); labels must be class "
                     f"indices 0..num_classes-1. Renumber them, e.g. with np.unique({name}, "
                     f"return_inverse=True)[1].")
  if y.size and y.max() > _INT32_MAX:
    raise ValueError(f"{name} has label {y.max().item()}, larger than int32 allows; labels must be "
                     f"class indices 0..num_classes-1. Renumber them, e.g. with np.unique({name}, "
                     f"return_inverse=True)[1].")
  return y.astype(np.int32)


def _check_inputs(x: np.ndarray, name: str, where: str) -> None:
  """Non-empty, a feature axis, a real numeric dtype, finite values."""
  if x.ndim < 2:
    raise ValueError(f"{where}: {name} has shape {x.shape}; inputs need a batch axis and at "
                     f"least one feature axis, (N, features...). For one scalar feature per "
                     f"example pass {name}[:, None].")
  if len(x) == 0:
    raise ValueError(f"{where}: {name} is empty (shape {x.shape}); the train and test splits each "
                     f"need at least one example (the test split measures test error). Provide "
                     f"examples for it.")
  if not (x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer)
          or np.issubdtype(x.dtype, np.floating)):
    raise ValueError(f"{where}: {name} has dtype {x.dtype}; inputs must be real numbers (uint8 "
                     f"images or float arrays). Convert it, e.g. {name}.astype(np.float32).")
  # Integer inputs are always finite; skipping them keeps this free for uint8 image datasets.
  if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
    bad = ~np.isfinite(x.reshape(len(x), -1))
    rows = np.flatnonzero(bad.any(axis=1))
    raise ValueError(
        f"{where}: {name} has {int(bad.sum())} non-finite values (NaN or inf) in {len(rows)} "
        f"examples, the first at index {int(rows[0])}; inputs must be finite (one NaN makes every "
        f"loss and metric it touches NaN). Drop or repair those examples before loading, e.g. "
        f"keep = np.isfinite({name}).reshape(len({name}), -1).all(axis=1).")


def check_dataset(dataset: Any) -> None:
  """Checks a dataset's arrays before anything uses them.

  Checks, with `dataset` any object with `name`, `x_train`, `y_train`, `x_test`, `y_test` and
  `num_classes` (a `Dataset`):
  - `num_classes` is an int >= 2;
  - every split is non-empty, has a feature axis, a real numeric dtype and finite inputs;
  - labels are 1-D integer arrays (see `class_indices` to convert), one per example, in
    [0, num_classes);
  - every class in `y_test` also occurs in `y_train` (a class seen only at test time is a
    labelling error, and would silently add an output the models never learn);
  - train and test examples have the same shape and dtype (uint8 inputs are scaled as images,
    floats are used as they are, so a dtype mismatch changes the inputs' scale).

  Raises:
    ValueError: naming the first problem found, what is allowed and the fix.
  """
  where = f"dataset {dataset.name!r}"
  for split in ("train", "test"):
    _check_inputs(np.asarray(getattr(dataset, f"x_{split}")), f"x_{split}", where)
  k = dataset.num_classes
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
    raise ValueError(f"{where}: num_classes is {k!r}; it must be an integer >= 2 (a classifier "
                     f"needs at least two classes).")
  labels = {}
  for split in ("train", "test"):
    x, y = np.asarray(getattr(dataset, f"x_{split}")), np.asarray(getattr(dataset, f"y_{split}"))
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
      # class_indices raises the specific message (shape or dtype); a float array of whole
      # numbers passes it, so name the remaining problem: a Dataset holds integer labels.
      class_indices(y, f"y_{split}")
      raise ValueError(f"{where}: y_{split} has dtype {y.dtype}; a Dataset holds integer class "
                       f"indices. Convert them with unlearn_jax.data.class_indices(y_{split}), "
                       f"which refuses values that are not whole numbers.")
    if len(x) != len(y):
      raise ValueError(f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; they "
                       f"need one label per example.")
    if y.min() < 0 or y.max() >= k:
      raise ValueError(f"{where}: y_{split} must lie in [0, {k}) (num_classes={k}), got range "
                       f"[{y.min()}, {y.max()}]. Labels are class indices 0..num_classes-1.")
    labels[split] = y
  x_train, x_test = np.asarray(dataset.x_train), np.asarray(dataset.x_test)
  if x_train.shape[1:] != x_test.shape[1:]:
    raise ValueError(f"{where}: x_test has per-example shape {x_test.shape[1:]} but x_train has "
                     f"{x_train.shape[1:]}; train and test examples must have the same shape. "
                     f"Reshape or resize one of them.")
  if x_train.dtype != x_test.dtype:
    raise ValueError(f"{where}: x_train has dtype {x_train.dtype} but x_test has {x_test.dtype}; "
                     f"both must share one dtype (uint8 inputs are scaled as images in [0, 255], "
                     f"floats are used as they are). Store both with the same dtype.")
  train_counts = np.bincount(labels["train"], minlength=k)
  test_counts = np.bincount(labels["test"], minlength=k)
  only_test = np.flatnonzero((train_counts == 0) & (test_counts > 0))
  if len(only_test):
    raise ValueError(
        f"{where}: class(es) {only_test.tolist()} occur in y_test "
        f"({int(test_counts[only_test].sum())} examples) but never in y_train; every test class "
        f"must be a training class (a class seen only at test time would add an output the models "
        f"never learn). Fix the labels, or drop those test examples.")


def check_sizes(splits: Any, *, train_batch_size: int, unlearn_batch_size: int) -> None:
  """Checks that every pool a stage draws batches from holds at least one batch.

  An epoch drops its last partial batch, so a pool smaller than a batch has no step at all; the
  trainer notices only after compiling. Checks that `config.train.batch_size` fits the training
  split (original models) and the retain set (retrained references), and that
  `config.unlearn.batch_size` fits the retain set (unlearning's retain passes and its retraining).
  The forget set may be smaller than a batch: unlearning cycles it.

  Args:
    splits: a `Splits` (uses `y_train`, `retain_idx`, `forget_idx`).
    train_batch_size: `config.train.batch_size`.
    unlearn_batch_size: `config.unlearn.batch_size`.

  Raises:
    ValueError: naming the setting, its value, the pool size and the fix.
  """
  for setting, value in (("config.train.batch_size", train_batch_size),
                         ("config.unlearn.batch_size", unlearn_batch_size)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{setting}={value!r}; a batch size must be an integer >= 1.")
  n_train, n_retain = len(splits.y_train), len(splits.retain_idx)
  n_forget = len(splits.forget_idx)
  pools = (
      ("config.train.batch_size", train_batch_size, n_train,
       "the training split (the original models train on it)",
       "or lower config.dataset.val_fraction / use more training data"),
      ("config.train.batch_size", train_batch_size, n_retain,
       f"the retain set (training split of {n_train} minus the forget set of {n_forget}; the "
       f"retrained reference models train on it)", "or lower config.dataset.forget_size"),
      ("config.unlearn.batch_size", unlearn_batch_size, n_retain,
       f"the retain set (training split of {n_train} minus the forget set of {n_forget}; "
       f"unlearning draws retain batches from it)", "or lower config.dataset.forget_size"),
  )
  for setting, value, pool, what, alternative in pools:
    if value > pool:
      raise ValueError(f"{setting}={value} is larger than {what}, which has {pool} examples; an "
                       f"epoch drops its last partial batch, so it would have no step. Set "
                       f"{setting} to at most {pool}, {alternative}.")


def check_model_input(x_shape: Sequence[int], model_name: str, augment: bool) -> None:
  """Checks that a model can read inputs of shape `x_shape` as intended.

  Convolutional models (`CONV_MODELS`) take 1-D signals (N, L) or NHWC images (N, H, W, C); any
  other rank would be misread (grayscale images (N, H, W) become length-H signals with W
  channels). Crop+flip augmentation (`augment`) needs images (N, H, W, C); on anything else it
  would silently do nothing. Other models (the MLP) flatten each example and take any shape.

  Args:
    x_shape: shape of the input array, batch axis first, e.g. `splits.x_train.shape`.
    model_name: `config.model.name`.
    augment: `config.train.augment`.

  Raises:
    ValueError: naming the shape, what the model or augmentation needs, and the fix.
  """
  x_shape = tuple(int(d) for d in x_shape)
  ndim = len(x_shape)
  if model_name in CONV_MODELS and ndim not in (2, 4):
    if ndim == 3:
      fix = (f"if these are grayscale images (N, H, W), add a channel axis: x[..., None] gives "
             f"{x_shape + (1,)} (a uint8 .npz gets it on loading)")
    else:
      fix = "reshape the inputs to one of these"
    raise ValueError(f"config.model.name={model_name!r} is convolutional and reads 1-D signals "
                     f"(N, L) or images (N, H, W, C), but the inputs have shape {x_shape}: "
                     f"{fix}, or use config.model.name='mlp', which takes any shape.")
  if augment and ndim != 4:
    raise ValueError(f"config.train.augment=True needs images (N, H, W, C), but the inputs have "
                     f"shape {x_shape}; crop+flip augmentation would do nothing on them. Set "
                     f"config.train.augment=False.")
