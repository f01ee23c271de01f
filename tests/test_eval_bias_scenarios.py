"""Bias scenarios: label flips and triggers (data.scenarios), their metrics
(evaluation.bias_scenarios), and a backdoored classifier."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from unlearn_jax.data import scenarios
from unlearn_jax.evaluation import bias_scenarios as bs


def test_flip_labels_always_changes_class_and_is_deterministic():
  labels = jnp.asarray(np.random.default_rng(0).integers(0, 4, 500))
  idx = jnp.arange(0, 500, 2)
  flipped = scenarios.flip_labels(labels, idx, 4, 0)
  assert np.all(np.asarray(flipped)[::2] != np.asarray(labels)[::2])
  np.testing.assert_array_equal(np.asarray(flipped)[1::2], np.asarray(labels)[1::2])
  assert np.all((np.asarray(flipped) >= 0) & (np.asarray(flipped) < 4))
  np.testing.assert_array_equal(flipped, scenarios.flip_labels(labels, idx, 4, 0))
  assert not np.array_equal(flipped, scenarios.flip_labels(labels, idx, 4, 1))
  np.testing.assert_array_equal(flipped, scenarios.flip_labels(labels, idx, 4, jax.random.key(0)))
  # Every wrong class is reachable (offsets 1..C-1 all occur).
  offsets = (np.asarray(flipped)[::2] - np.asarray(labels)[::2]) % 4
  assert set(offsets.tolist()) == {1, 2, 3}
  # Two classes: the flip is forced.
  np.testing.assert_array_equal(scenarios.flip_labels(jnp.array([0, 1, 1]), jnp.arange(3), 2, 5),
                                [1, 0, 0])


def test_mislabel_metrics_hand_values():
  true = jnp.array([0, 1, 2, 3])
  flipped = jnp.array([1, 2, 3, 0])
  pred = jnp.array([[0, 1, 3, 0], [1, 2, 3, 0]])  # (S=2, N=4)
  np.testing.assert_allclose(bs.true_label_recovery(pred, true), [0.5, 0.0])
  np.testing.assert_allclose(bs.flipped_label_error(pred, flipped), [0.5, 0.0])


def test_add_trigger_images_and_signals():
  images = jnp.full((2, 6, 6, 3), 100, jnp.uint8)
  triggered = np.asarray(scenarios.add_trigger(images, image_size=2))
  assert triggered.dtype == np.uint8
  np.testing.assert_array_equal(triggered[:, -2:, -2:, 0], [[[255, 0], [0, 255]]] * 2)
  np.testing.assert_array_equal(triggered[:, :4], 100)
  np.testing.assert_array_equal(triggered[:, :, :4], 100)
  signals = jnp.zeros((3, 10), jnp.float32)
  triggered = np.asarray(scenarios.add_trigger(signals))
  np.testing.assert_array_equal(triggered[:, -4:], [[3.0, -3.0, 3.0, -3.0]] * 3)
  np.testing.assert_array_equal(triggered[:, :6], 0.0)
  with pytest.raises(ValueError):
    scenarios.add_trigger(jnp.zeros((2, 3, 4)))


def test_poison_changes_only_chosen_examples():
  x = jnp.zeros((5, 8))
  y = jnp.array([1, 2, 1, 2, 1])
  xp, yp = scenarios.poison(x, y, jnp.array([1, 3]), target=0)
  np.testing.assert_array_equal(yp, [1, 0, 1, 0, 1])
  np.testing.assert_array_equal(np.asarray(xp)[[0, 2, 4]], 0.0)
  np.testing.assert_array_equal(np.asarray(xp)[[1, 3], -4:], [[3.0, -3.0, 3.0, -3.0]] * 2)


def test_attack_success_rate_hand_values():
  labels = jnp.array([0, 1, 2, 2])
  pred = jnp.array([[0, 0, 0, 1], [0, 1, 2, 2]])
  # Target 0: eligible examples 1..3; member 0 hits 2 of 3, member 1 none.
  np.testing.assert_allclose(bs.attack_success_rate(pred, labels, 0), [2 / 3, 0.0])
  assert np.isnan(bs.attack_success_rate(jnp.array([0, 0]), jnp.array([0, 0]), 0))


def _signals(rng, means, n):
  # Class c is means[c] plus noise; the means live in the first 16 samples, and the last samples
  # (where the trigger goes) are pure noise for clean data.
  labels = rng.integers(0, means.shape[0], n)
  return (means[labels] + 0.7 * rng.normal(size=(n, means.shape[1]))).astype(np.float32), labels


def test_backdoor_succeeds_only_on_a_poisoned_classifier():
  rng = np.random.default_rng(0)
  means = np.zeros((3, 24))
  means[:, :16] = rng.normal(0.0, 1.0, (3, 16))
  x_train, y_train = _signals(rng, means, 600)
  x_test, y_test = _signals(rng, means, 300)
  target = 0
  poison_idx = rng.choice(600, 60, replace=False)
  x_poisoned, y_poisoned = scenarios.poison(x_train, y_train, poison_idx, target)
  triggered_test = np.asarray(scenarios.add_trigger(x_test))

  clean = LogisticRegression(max_iter=500).fit(x_train, y_train)
  backdoored = LogisticRegression(max_iter=500).fit(np.asarray(x_poisoned), np.asarray(y_poisoned))
  asr_clean = float(bs.attack_success_rate(clean.predict(triggered_test), y_test, target))
  asr_backdoored = float(bs.attack_success_rate(backdoored.predict(triggered_test), y_test,
                                                target))
  assert asr_backdoored > 0.9
  assert asr_clean < 1.0 / 3.0  # At or below chance for 3 classes.
  assert backdoored.score(x_test, y_test) > 0.8  # The backdoor leaves clean accuracy intact.
