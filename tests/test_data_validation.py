"""Bad data and bad sizes fail early with messages naming the value, the setting and the fix.

One test per reproduction a user hit (each ran to exit 0 with wrong numbers, or crashed with a raw
numpy error), plus the data fingerprint that keys the sweep's caches.
"""
import hashlib
import time

import numpy as np
import pytest

from unlearn_jax import data


def _arrays(n_train=12, n_test=6, features=(5,), num_classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return dict(x_train=rng.normal(size=(n_train,) + features).astype(np.float32),
              y_train=np.arange(n_train) % num_classes,
              x_test=rng.normal(size=(n_test,) + features).astype(np.float32),
              y_test=np.arange(n_test) % num_classes)


def _load_npz(tmp_path, **overrides):
  arrays = {**_arrays(), **overrides}
  path = tmp_path / "mine.npz"
  np.savez(path, **arrays)
  return data.load("npz", path=str(path))


# ------------------------------------------------------------------------------ dataset content

@pytest.mark.parametrize("split", ["x_train", "x_test"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_non_finite_inputs_are_refused(tmp_path, split, bad):
  x = _arrays()[split]
  x[3, 2] = bad
  with pytest.raises(ValueError, match=rf"{split} has 1 non-finite values .* first at index 3"):
    _load_npz(tmp_path, **{split: x})


def test_hand_built_dataset_is_checked_too():
  a = _arrays()
  a["x_train"][0, 0] = np.nan
  with pytest.raises(ValueError, match="x_train has 1 non-finite"):
    data.Dataset("mine", num_classes=3, **a)
  a = _arrays()
  a["y_train"] = a["y_train"].astype(np.float32)
  with pytest.raises(ValueError, match="y_train has dtype float32.*class_indices"):
    data.Dataset("mine", num_classes=3, **a)


def test_npz_label_only_in_test_is_refused(tmp_path):
  y_test = np.array([0, 1, 2, 3, 1, 0])   # class 3 never occurs in y_train
  with pytest.raises(ValueError, match=r"class\(es\) \[3\] occur in y_test \(1 examples\) but "
                                       r"never in y_train"):
    _load_npz(tmp_path, y_test=y_test)


def test_npz_float_labels_must_be_whole_numbers(tmp_path):
  y_train = (np.arange(12) % 3).astype(np.float64)
  y_train[4] = 0.5
  with pytest.raises(ValueError, match=r"mine.npz: y_train has 1 labels that are not whole "
                                       r"numbers, e.g. .*0.5.* at index 4"):
    _load_npz(tmp_path, y_train=y_train)
  # Whole-number floats are class indices: accepted, and equal to the integer labels.
  ds = _load_npz(tmp_path, y_train=(np.arange(12) % 3).astype(np.float32))
  assert ds.y_train.dtype == np.int32 and ds.num_classes == 3
  np.testing.assert_array_equal(ds.y_train, np.arange(12) % 3)


def test_npz_one_hot_labels_are_refused(tmp_path):
  one_hot = np.eye(3)[np.arange(12) % 3]
  with pytest.raises(ValueError, match=r"y_train has shape \(12, 3\); labels must be integer "
                                       r"class indices .*y_train.argmax\(axis=1\)"):
    _load_npz(tmp_path, y_train=one_hot)
  with pytest.raises(ValueError, match=r"y_test has shape \(6, 1\).*y_test\[:, 0\]"):
    _load_npz(tmp_path, y_test=(np.arange(6) % 3)[:, None])


def test_npz_one_based_labels_are_refused(tmp_path):
  with pytest.raises(ValueError, match=r"class\(es\) \[0\] never occur in y_train.*1-based"):
    _load_npz(tmp_path, y_train=np.arange(12) % 3 + 1, y_test=np.arange(6) % 3 + 1)


def test_npz_grayscale_uint8_images_get_a_channel_axis(tmp_path):
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)
  x_test = rng.integers(0, 256, (6, 6, 6), dtype=np.uint8)
  ds = _load_npz(tmp_path, x_train=x_train, x_test=x_test)
  assert ds.x_train.shape == (12, 6, 6, 1) and ds.x_test.shape == (6, 6, 6, 1) and ds.is_image
  assert ds.x_train.dtype == np.uint8
  np.testing.assert_array_equal(ds.x_train[..., 0], x_train)
  data.check_model_input(ds.x_train.shape, "cnn", augment=True)


def test_npz_empty_test_set_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"x_test is empty \(shape \(0, 5\)\)"):
    _load_npz(tmp_path, x_test=np.zeros((0, 5), np.float32), y_test=np.zeros(0, np.int64))


def test_npz_test_shape_other_than_train_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"x_test has per-example shape \(4,\) but x_train has "
                                       r"\(5,\)"):
    _load_npz(tmp_path, x_test=np.zeros((6, 4), np.float32))
  with pytest.raises(ValueError, match="x_train has dtype uint8 but x_test has float32"):
    _load_npz(tmp_path, x_train=np.zeros((12, 5), np.uint8))


# --------------------------------------------------------------------------------- forget sets

def test_forget_size_zero_is_refused():
  ds = data.load("synthetic", num_train=40, num_test=8)
  with pytest.raises(ValueError, match=r"config.dataset.forget_size=0 \(config.dataset.forget_mode="
                                       r"'uniform'\).*>= 1.*32 examples, so at most 31"):
    data.make_splits(ds, forget_size=0)


@pytest.mark.parametrize("forget_size", [32, 50])
def test_uniform_forget_set_as_large_as_its_pool_is_refused(forget_size):
  ds = data.load("synthetic", num_train=40, num_test=8)   # 32 train examples after validation
  with pytest.raises(ValueError, match=rf"forget_size={forget_size} \(config.dataset.forget_mode="
                                       r"'uniform'\) is not smaller than its pool of 32 examples"
                                       r".*between 1 and 31"):
    data.make_splits(ds, forget_size=forget_size)


def test_class_forget_set_as_large_as_its_pool_is_refused():
  ds = data.load("synthetic", num_train=40, num_test=8)   # 8 train examples of class 1
  with pytest.raises(ValueError, match=r"forget_size=8 \(config.dataset.forget_mode='classes', "
                                       r"config.dataset.forget_classes=\[1\]\) is not smaller "
                                       r"than its pool of 8 examples.*'whole_classes'"):
    data.make_splits(ds, forget_size=8, forget_mode="classes", forget_classes=(1,))
  s = data.make_splits(ds, forget_size=7, forget_mode="classes", forget_classes=(1,))
  assert s.summary()["forget"] == 7


def test_forget_classes_ignored_by_uniform_mode_are_refused():
  ds = data.load("synthetic", num_train=40, num_test=8)
  with pytest.raises(ValueError, match=r"forget_classes=\[2\] is set.*'uniform'.*ignore"):
    data.make_splits(ds, forget_size=4, forget_classes=(2,))


def test_whole_classes_leaving_no_retain_example_is_refused():
  y = np.repeat(np.arange(3), 5)
  with pytest.raises(ValueError, match="whole training split of 15 examples"):
    data.make_forget_set(y, 0, seed=0, mode="whole_classes", classes=(0, 1, 2))


# ------------------------------------------------------------------------- batch and model fit

def _splits(n_train=40, forget_size=8):
  return data.make_splits(data.load("synthetic", num_train=n_train, num_test=8),
                          forget_size=forget_size)   # train 32, retain 24


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_batch_size=33, unlearn_batch_size=8),
     r"config.train.batch_size=33 is larger than the training split.*32 examples.*at most 32"),
    (dict(train_batch_size=32, unlearn_batch_size=8),
     r"config.train.batch_size=32 is larger than the retain set.*retrained.*24 examples.*at most "
     r"24.*config.dataset.forget_size"),
    (dict(train_batch_size=16, unlearn_batch_size=25),
     r"config.unlearn.batch_size=25 is larger than the retain set.*24 examples.*at most 24"),
    (dict(train_batch_size=0, unlearn_batch_size=8), r"config.train.batch_size=0.*>= 1"),
])
def test_batch_larger_than_its_pool_is_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.check_sizes(_splits(), **kwargs)


def test_batches_that_fit_pass():
  data.check_sizes(_splits(), train_batch_size=24, unlearn_batch_size=24)


@pytest.mark.parametrize("shape, model, augment, message", [
    ((10, 28, 28), "cnn", False, r"config.model.name='cnn'.*\(10, 28, 28\).*x\[..., None\]"),
    ((10, 28, 28), "preact_resnet18", False, "channel axis"),
    ((10, 2, 3, 4, 5), "preact_resnet18_scrub", False, r"\(N, H, W, C\)"),
    ((10, 40), "mlp", True, r"config.train.augment=True needs images.*\(10, 40\)"),
    ((10, 40), "cnn", True, "config.train.augment=False"),
])
def test_model_input_mismatch_is_refused(shape, model, augment, message):
  with pytest.raises(ValueError, match=message):
    data.check_model_input(shape, model, augment)


def test_model_inputs_that_fit_pass():
  data.check_model_input((10, 8, 8, 3), "preact_resnet18", True)
  data.check_model_input((10, 40), "cnn", False)            # 1-D signals, as MNIST-1D
  data.check_model_input((10, 28, 28), "mlp", False)        # the MLP flattens any shape


# ---------------------------------------------------------------------------- source arguments

def test_load_refuses_kwargs_the_source_does_not_take():
  with pytest.raises(ValueError, match=r"dataset 'cifar10' does not accept kwargs \['length', "
                                       r"'num_train'\] "
                                       r"\(config.dataset.kwargs=.*accepts: data_dir=None, "
                                       r"download=False.*replace config.dataset.kwargs"):
    data.load("cifar10", length=16, num_train=300)
  with pytest.raises(ValueError, match=r"dataset 'npz' needs kwargs \['path'\].*path \(required\)"):
    data.load("npz")


# ---------------------------------------------------------------------------------- fingerprint

def test_offline_sources_load_unchanged():
  # Digest of the synthetic arrays before validation was added: the checks change no array.
  ds = data.load("synthetic")
  h = hashlib.sha256()
  for k in ("x_train", "y_train", "x_test", "y_test"):
    a = getattr(ds, k)
    h.update(f"{k}{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
  h.update(str(ds.num_classes).encode())
  assert h.hexdigest()[:16] == "bc501297a27e5789"


def test_fingerprint_depends_on_content_only():
  a, b = _splits(), _splits()
  assert data.fingerprint(a) == data.fingerprint(b)
  assert len(data.fingerprint(a)) == 16 and int(data.fingerprint(a), 16) >= 0
  # A non-contiguous view of the same values hashes like the contiguous array.
  x = np.asfortranarray(a.x_train)
  assert data.fingerprint(data.Splits(**{**vars(a), "x_train": x})) == data.fingerprint(a)
  # Pinned, so that a digest that depended on the process (e.g. Python's hash) would show.
  assert data.fingerprint(a) == "dfb018b94fd09ddf"


@pytest.mark.parametrize("field", ["x_train", "y_train", "y_train_clean", "x_val", "y_val",
                                   "x_test", "y_test", "forget_idx", "retain_idx"])
def test_fingerprint_changes_with_one_element(field):
  s = _splits()
  changed = getattr(s, field).copy()
  changed.flat[0] += 1
  assert data.fingerprint(data.Splits(**{**vars(s), field: changed})) != data.fingerprint(s)


def test_fingerprint_changes_with_num_classes_and_dtype():
  s = _splits()
  assert data.fingerprint(data.Splits(**{**vars(s), "num_classes": 5})) != data.fingerprint(s)
  same = data.Splits(**{**vars(s), "num_classes": np.int64(s.num_classes)})
  assert data.fingerprint(same) == data.fingerprint(s)
  y64 = s.y_test.astype(np.int64)
  assert data.fingerprint(data.Splits(**{**vars(s), "y_test": y64})) != data.fingerprint(s)


def test_fingerprint_sees_an_npz_changed_in_place(tmp_path):
  arrays = _arrays(n_train=40, n_test=8)
  path = tmp_path / "mine.npz"
  np.savez(path, **arrays)
  before = data.fingerprint(data.make_splits(data.load("npz", path=str(path)), forget_size=4))
  arrays["x_test"][5, 1] += 1e-3
  np.savez(path, **arrays)
  after = data.fingerprint(data.make_splits(data.load("npz", path=str(path)), forget_size=4))
  assert before != after


def test_fingerprint_is_fast():
  rng = np.random.default_rng(0)
  n = 20_000
  small = np.zeros((10, 32, 32, 1), np.uint8)
  s = data.Splits(rng.integers(0, 256, (n, 32, 32, 1), np.uint8), np.zeros(n, np.int32),
                  np.zeros(n, np.int32), small, np.zeros(10, np.int32), small,
                  np.zeros(10, np.int32), np.arange(10), np.arange(10, n), 10)   # ~20 MB
  start = time.perf_counter()
  data.fingerprint(s)
  assert time.perf_counter() - start < 1.0
