"""Dataset sources that load into memory as numpy arrays.

Every source returns a `Dataset`: images as uint8 NHWC, 1-D signals as float32 (N, L), integer
labels. Nothing here downloads: MNIST-1D is generated procedurally, TFDS datasets are read from a
prepared `data_dir` with `download=False`, `.npz` files are the user's own arrays.

A `Dataset` checks its arrays when it is built (`validation.check_dataset`), so every source and
every hand-built dataset is refused with a clear message before anything is compiled.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import inspect
import os
import random
import zipfile
from typing import Callable

import numpy as np

from unlearn_jax.data import validation

TFDS_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A classification dataset held in host memory."""
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int

  @property
  def is_image(self) -> bool:
    return self.x_train.ndim == 4

  def __post_init__(self):
    # Here rather than in `load` or `make_splits`: every source and every hand-built Dataset
    # passes through, and the checks cost nothing next to loading (integer inputs skip the NaN
    # scan).
    validation.check_dataset(self)


def _mnist1d(seed: int = 42, num_samples: int = 5000) -> Dataset:
  """MNIST-1D generated with the package's standard arguments (4000 train / 1000 test).

  Generating takes seconds (importing the package imports matplotlib), so the arrays are kept
  in `mnist1d_cache_dir()` per (seed, size, package version) and read back at once; a missing
  or unreadable file is generated again.
  """
  path = os.path.join(mnist1d_cache_dir(), f"mnist1d-{_package_version('mnist1d')}-seed{seed}-"
                      f"n{num_samples}.npz")
  try:
    with np.load(path) as f:
      arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
    arrays = _generate_mnist1d(seed, num_samples)
    _save_atomically(path, arrays)
  return Dataset("mnist1d", arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], 10)


def mnist1d_cache_dir() -> str:
  """Where generated MNIST-1D arrays are kept: $UNLEARN_JAX_DATA_CACHE, else
  ~/.cache/unlearn_jax/data."""
  return os.path.expanduser(os.environ.get("UNLEARN_JAX_DATA_CACHE",
                                           "~/.cache/unlearn_jax/data"))


def _generate_mnist1d(seed: int, num_samples: int) -> dict[str, np.ndarray]:
  """`mnist1d.data.make_dataset` seeds numpy's and Python's global RNGs; we save and restore both
  so that loading data never changes the caller's random streams. We call the generator
  directly: `get_dataset` would try to download a pickle first."""
  from mnist1d.data import get_dataset_args, make_dataset  # pylint: disable=g-import-not-at-top
  args = get_dataset_args()
  args.seed, args.num_samples = seed, num_samples
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    data = make_dataset(args)
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int32),
          "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int32)}


def _package_version(name: str) -> str:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def _save_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes `path` whole or not at all (concurrent runs may write the same file); a read-only
  or full disk only costs the next run the generation."""
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
  except OSError:
    pass


def _synthetic(seed: int = 0, num_train: int = 240, num_test: int = 120, num_classes: int = 4,
               length: int = 16, image_size: int = 0) -> Dataset:
  """A tiny, learnable dataset for tests: class means plus Gaussian noise.

  With `image_size > 0` it returns uint8 images (N, S, S, 3); otherwise float signals (N, length).
  """
  rng = np.random.default_rng(seed)
  shape = (image_size, image_size, 3) if image_size else (length,)
  means = rng.normal(size=(num_classes,) + shape).astype(np.float32)

  def draw(n):
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = means[y] + 0.7 * rng.normal(size=(n,) + shape).astype(np.float32)
    if image_size:
      x = np.clip(x * 40 + 128, 0, 255).astype(np.uint8)
    return x, y.astype(np.int32)

  (x_train, y_train), (x_test, y_test) = draw(num_train), draw(num_test)
  return Dataset("synthetic", x_train, y_train, x_test, y_test, num_classes)


def _npz(path: str) -> Dataset:
  """The user's own arrays: an .npz file with x_train, y_train, x_test, y_test.

  Inputs: uint8 arrays are images and stay uint8 (the models scale them from [0, 255]). A 3-D
  uint8 array (N, H, W) is read as grayscale images without a channel axis and gets one,
  (N, H, W, 1): uint8 is this package's image convention (signals are float), so the reading is
  unambiguous, and without the axis a convolutional model would take each image as a length-H
  signal with W channels. Every other numeric array becomes float32 and is used as it is.

  Labels must be class indices: integers, or floats that are whole numbers (others are refused,
  not truncated); not one-hot. num_classes is the largest label + 1, so every class
  0..num_classes-1 must occur in y_train (1-based labels would leave class 0 empty).
  `validation.check_dataset` refuses the rest (NaN/inf, empty splits, test-only classes, train and
  test of different shapes or dtypes).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"npz dataset file {path!r} does not exist.")
  with np.load(path) as f:
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
    if missing:
      raise ValueError(f"{path}: missing arrays {sorted(missing)}; an npz dataset needs "
                       "x_train, y_train, x_test, y_test.")
    arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  for k in ("x_train", "x_test"):
    x = arrays[k]
    if x.dtype == np.uint8:
      arrays[k] = x[..., None] if x.ndim == 3 else x
    elif x.dtype == np.bool_ or np.issubdtype(x.dtype, np.number):
      arrays[k] = x.astype(np.float32)  # other dtypes are left for check_dataset to refuse
  try:
    y_train = validation.class_indices(arrays["y_train"], "y_train")
    y_test = validation.class_indices(arrays["y_test"], "y_test")
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  num_classes = max((int(y.max()) for y in (y_train, y_test) if y.size), default=-1) + 1
  dataset = Dataset(os.path.basename(path), arrays["x_train"], y_train, arrays["x_test"], y_test,
                    num_classes)
  absent = np.flatnonzero(np.bincount(y_train, minlength=num_classes) == 0)
  if len(absent):
    raise ValueError(
        f"{path}: class(es) {absent.tolist()} never occur in y_train; num_classes is inferred as "
        f"the largest label + 1 = {num_classes}, so labels must number the classes "
        f"0..{num_classes - 1} without gaps (1-based labels leave class 0 empty). Renumber them: "
        f"classes, y_train = np.unique(y_train, return_inverse=True), then y_test = "
        f"np.searchsorted(classes, y_test).")
  return dataset


def _tfds(name: str, data_dir: str | None = None, download: bool = False) -> Dataset:
  """A prepared TFDS dataset read through `tfds.data_source` (array_record; no TensorFlow)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
  arrays = {}
  for split in ("train", "test"):
    try:
      source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except Exception as e:  # tfds raises several types for "not prepared".
      raise FileNotFoundError(
          f"TFDS dataset {name!r} (split {split!r}) is not prepared in data_dir="
          f"{data_dir or '~/tensorflow_datasets'}. Prepare it once with "
          f"`pip install -e '.[prepare]' && python -m experiments.prepare_data --dataset={name}"
          f"{' --data_dir=' + data_dir if data_dir else ''}` (see BUILD.md), or pass "
          f"data_dir / set $TFDS_DATA_DIR to where it is. Underlying error: {e}") from e
    images, labels = [], []
    for i in range(len(source)):
      record = source[i]
      images.append(record["image"])
      labels.append(record["label"])
    arrays[f"x_{split}"] = np.stack(images).astype(np.uint8)
    arrays[f"y_{split}"] = np.asarray(labels, np.int32)
  num_classes = tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
  return Dataset(name, num_classes=num_classes, **arrays)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": _mnist1d,
    "synthetic": _synthetic,
    "npz": _npz,
    # partial (not a lambda) keeps _tfds's signature visible to `load`'s check of kwargs.
    **{name: functools.partial(_tfds, name) for name in TFDS_DATASETS},
}


def _check_kwargs(name: str, source: Callable[..., Dataset], kwargs: dict) -> None:
  """Refuses kwargs that `source` does not take, or lacks, naming the ones it accepts.

  Without this a config that switches `config.dataset.name` but keeps the old
  `config.dataset.kwargs` fails inside the source with a bare TypeError.
  """
  params = inspect.signature(source).parameters.values()
  if any(p.kind == p.VAR_KEYWORD for p in params):
    return  # a source that takes **kwargs checks them itself
  accepted = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
  names = {p.name for p in accepted}
  unknown = sorted(set(kwargs) - names)
  missing = [p.name for p in accepted if p.default is p.empty and p.name not in kwargs]
  if not unknown and not missing:
    return
  described = ", ".join(p.name + (" (required)" if p.default is p.empty else f"={p.default!r}")
                        for p in accepted) or "none"
  problem = (f"does not accept kwargs {unknown}" if unknown else "") + (
      " and " if unknown and missing else "") + (f"needs kwargs {missing}" if missing else "")
  raise ValueError(
      f"dataset {name!r} {problem} (config.dataset.kwargs={dict(kwargs)}); the {name!r} source "
      f"accepts: {described}. Set config.dataset.kwargs to arguments of this source: a config "
      f"that changes config.dataset.name must also replace config.dataset.kwargs ({{}} for the "
      f"defaults).")


def load(name: str, **kwargs) -> Dataset:
  """Loads dataset `name` ('mnist1d', 'synthetic', 'npz' (path=...), or a TFDS name).

  `kwargs` are checked against the source's signature first, and the returned `Dataset` has
  passed `validation.check_dataset`.
  """
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; available: {sorted(DATASETS)}.")
  source = DATASETS[name]
  _check_kwargs(name, source, kwargs)
  return source(**kwargs)
