"""Data sources, splits, forget sets, label noise and augmentation."""
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import data


def test_mnist1d_is_generated_offline_deterministic_and_keeps_global_rng(monkeypatch, tmp_path):
  import requests
  def no_network(*a, **k):
    raise AssertionError("MNIST-1D must not touch the network")
  monkeypatch.setattr(requests, "get", no_network)
  monkeypatch.setenv("UNLEARN_JAX_DATA_CACHE", str(tmp_path))
  np.random.seed(123)
  random.seed(123)
  before_np, before_py = np.random.rand(), random.random()
  np.random.seed(123)
  random.seed(123)
  a = data.load("mnist1d", num_samples=500)
  after_np, after_py = np.random.rand(), random.random()
  assert (before_np, before_py) == (after_np, after_py)
  b = data.load("mnist1d", num_samples=500)
  assert a.x_train.shape == (400, 40) and a.x_test.shape == (100, 40)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.y_test, b.y_test)
  c = data.load("mnist1d", num_samples=500, seed=7)
  assert not np.array_equal(a.x_train, c.x_train)


def test_mnist1d_cache_returns_the_generated_arrays_and_survives_damage(monkeypatch, tmp_path):
  from unlearn_jax.data import sources
  monkeypatch.setenv("UNLEARN_JAX_DATA_CACHE", str(tmp_path))
  fresh = sources._generate_mnist1d(3, 300)
  first = data.load("mnist1d", num_samples=300, seed=3)    # generates and writes the file
  (cached,) = tmp_path.glob("mnist1d-*-seed3-n300.npz")
  second = data.load("mnist1d", num_samples=300, seed=3)   # reads it
  for ds in (first, second):
    for name, array in (("x_train", "x"), ("y_train", "y"), ("x_test", "x_test"),
                        ("y_test", "y_test")):
      np.testing.assert_array_equal(getattr(ds, name), fresh[array])
      assert getattr(ds, name).dtype == fresh[array].dtype
  cached.write_bytes(b"not an npz file")
  np.testing.assert_array_equal(data.load("mnist1d", num_samples=300, seed=3).x_train, fresh["x"])
  assert np.load(cached)["x"].shape == fresh["x"].shape   # rewritten whole


def test_stratified_validation_split():
  y = np.repeat(np.arange(4), [50, 100, 30, 20])
  kept, held = data.stratified_holdout(y, 0.2, seed=0)
  assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(y)
  np.testing.assert_array_equal(np.bincount(y[held]), [10, 20, 6, 4])
  np.testing.assert_array_equal(held, data.stratified_holdout(y, 0.2, seed=0)[1])
  assert not np.array_equal(held, data.stratified_holdout(y, 0.2, seed=1)[1])


def test_make_splits_partitions_train_and_is_reproducible():
  ds = data.load("synthetic", num_train=200, num_test=40)
  s = data.make_splits(ds, val_fraction=0.2, forget_size=30, seed=3)
  assert s.summary() == {"train": 160, "val": 40, "test": 40, "forget": 30, "retain": 130}
  assert len(np.intersect1d(s.forget_idx, s.retain_idx)) == 0
  np.testing.assert_array_equal(np.union1d(s.forget_idx, s.retain_idx), np.arange(160))
  s2 = data.make_splits(ds, val_fraction=0.2, forget_size=30, seed=3)
  np.testing.assert_array_equal(s.forget_idx, s2.forget_idx)
  # validation examples are not training examples
  train_rows = {r.tobytes() for r in s.x_train}
  assert not any(r.tobytes() in train_rows for r in s.x_val)


def test_forget_modes():
  y = np.repeat(np.arange(5), 20)
  f = data.make_forget_set(y, 7, seed=0, mode="classes", classes=(1, 3))
  assert len(f) == 7 and set(y[f]) <= {1, 3}
  w = data.make_forget_set(y, 0, seed=0, mode="whole_classes", classes=(2,))
  np.testing.assert_array_equal(w, np.flatnonzero(y == 2))
  u = data.make_forget_set(y, 99, seed=0)
  assert len(u) == 99 and len(np.unique(u)) == 99 and u.max() < 100


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=101), "forget_size=101 .* not smaller than its pool of 100"),
    (dict(size=100), "forget_size=100 .* not smaller than its pool of 100"),
    (dict(size=20, mode="classes", classes=(0,)), "not smaller than its pool of 20"),
    (dict(size=-1), "forget_size=-1 .*>= 1"),
    (dict(size=0), "forget_size=0 .*>= 1"),
    (dict(size=3, mode="classes", classes=(9,)), "Unknown forget classes \\[9\\]"),
    (dict(size=3, mode="classes"), "non-empty list of classes"),
    (dict(size=3, mode="random"), "Unknown forget-set mode 'random'"),
])
def test_forget_set_errors(kwargs, message):
  y = np.repeat(np.arange(5), 20)
  with pytest.raises(ValueError, match=message):
    data.make_forget_set(y, seed=0, **kwargs)


def test_label_noise_is_class_balanced_and_always_changes_class():
  y = np.repeat(np.arange(4), 25)
  noisy = data.add_label_noise(y, 0.2, 4, seed=0)
  flipped = noisy != y
  np.testing.assert_array_equal(np.bincount(y[flipped], minlength=4), [5, 5, 5, 5])
  assert noisy.min() >= 0 and noisy.max() < 4


def test_unknown_dataset_and_missing_tfds_data(tmp_path):
  with pytest.raises(ValueError, match="Unknown dataset 'cifar11'.*cifar10"):
    data.load("cifar11")
  with pytest.raises(FileNotFoundError, match="not prepared.*experiments.prepare_data"):
    data.load("cifar10", data_dir=str(tmp_path))


def test_tfds_source_with_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = data.load("cifar10")
  assert ds.x_train.shape == (12, 32, 32, 3) and ds.x_train.dtype == np.uint8
  assert ds.num_classes == 10 and ds.y_train.dtype == np.int32 and ds.is_image


def test_npz_source(tmp_path):
  path = tmp_path / "mine.npz"
  rng = np.random.default_rng(0)
  np.savez(path, x_train=rng.normal(size=(10, 5)), y_train=np.arange(10) % 3,
           x_test=rng.normal(size=(4, 5)), y_test=np.arange(4) % 3)
  ds = data.load("npz", path=str(path))
  assert ds.num_classes == 3 and ds.x_train.dtype == np.float32
  np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 2)))
  with pytest.raises(ValueError, match="missing arrays"):
    data.load("npz", path=str(tmp_path / "bad.npz"))


def test_augment_crops_and_flips_per_example():
  img = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
  out = data.augment_batch(jax.random.key(0), img, pad=2)
  assert out.shape == img.shape
  # Every output is a (possibly flipped) window of the zero-padded input.
  padded = np.pad(np.asarray(img), ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(2):
    windows = [padded[i, a:a + 6, b:b + 6] for a in range(5) for b in range(5)]
    windows += [w[:, ::-1] for w in windows]
    assert any(np.array_equal(np.asarray(out[i]), w) for w in windows)
  same = data.augment_batch(jax.random.key(0), img, pad=2)
  np.testing.assert_array_equal(out, same)
  signals = jnp.ones((3, 10))
  np.testing.assert_array_equal(data.augment_batch(jax.random.key(0), signals), signals)
