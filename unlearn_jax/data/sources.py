"""Dataset sources that load into memory as numpy arrays.

Every source returns a `Dataset`: images as uint8 NHWC, 1-D signals as float32 (N, L), integer
labels. Nothing here downloads: MNIST-1D is generated procedurally, TFDS datasets are read from a
prepared `data_dir` with `download=False`, `.npz` files are the user's own arrays.
"""
from __future__ import annotations

import dataclasses
import os
import random
from typing import Callable

import numpy as np

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
    for split in ("train", "test"):
      x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
      if len(x) != len(y):
        raise ValueError(f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)}.")
      if y.size and (y.min() < 0 or y.max() >= self.num_classes):
        raise ValueError(f"{self.name}: y_{split} must lie in [0, {self.num_classes}), "
                         f"got range [{y.min()}, {y.max()}].")


def _mnist1d(seed: int = 42, num_samples: int = 5000) -> Dataset:
  """MNIST-1D generated with the package's standard arguments (4000 train / 1000 test).

  `mnist1d.data.make_dataset` seeds numpy's and Python's global RNGs; we save and restore both so
  that loading data never changes the caller's random streams. We call the generator directly:
  `get_dataset` would try to download a pickle first.
  """
  from mnist1d.data import get_dataset_args, make_dataset  # pylint: disable=g-import-not-at-top
  args = get_dataset_args()
  args.seed, args.num_samples = seed, num_samples
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    data = make_dataset(args)
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  return Dataset("mnist1d", data["x"].astype(np.float32), data["y"].astype(np.int32),
                 data["x_test"].astype(np.float32), data["y_test"].astype(np.int32), 10)


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
  """The user's own arrays: an .npz file with x_train, y_train, x_test, y_test."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"npz dataset file {path!r} does not exist.")
  with np.load(path) as f:
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
    if missing:
      raise ValueError(f"{path}: missing arrays {sorted(missing)}; an npz dataset needs "
                       "x_train, y_train, x_test, y_test.")
    arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  x_train = arrays["x_train"]
  if x_train.dtype != np.uint8:
    x_train, arrays["x_test"] = x_train.astype(np.float32), arrays["x_test"].astype(np.float32)
  y_train, y_test = arrays["y_train"].astype(np.int32), arrays["y_test"].astype(np.int32)
  num_classes = int(max(y_train.max(), y_test.max())) + 1
  return Dataset(os.path.basename(path), x_train, y_train, arrays["x_test"], y_test, num_classes)


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
    **{name: (lambda n: lambda **kw: _tfds(n, **kw))(name) for name in TFDS_DATASETS},
}


def load(name: str, **kwargs) -> Dataset:
  """Loads dataset `name` ('mnist1d', 'synthetic', 'npz' (path=...), or a TFDS name)."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; available: {sorted(DATASETS)}.")
  return DATASETS[name](**kwargs)
