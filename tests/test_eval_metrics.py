"""Tests for evaluation.metrics and evaluation.reference_gaps against hand-computed values."""
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax.evaluation import metrics, reference_gaps


def _np_log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture
def logits_and_labels():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 7, 4)).astype(np.float32)  # (S, N, C)
  labels = rng.integers(0, 4, size=7)
  return logits, labels


def test_per_example_quantities_match_numpy(logits_and_labels):
  logits, labels = logits_and_labels
  logp = _np_log_softmax(logits)
  true_logp = logp[:, np.arange(7), labels]
  np.testing.assert_allclose(metrics.per_example_loss(logits, labels), -true_logp, rtol=1e-5)
  np.testing.assert_allclose(metrics.true_class_confidence(logits, labels), np.exp(true_logp),
                             rtol=1e-5)
  p = np.exp(true_logp)
  np.testing.assert_allclose(metrics.logit_scaled_confidence(logits, labels),
                             np.log(p) - np.log1p(-p), rtol=1e-4, atol=1e-5)
  expected_error = (logits.argmax(-1) != labels).astype(np.float32)
  np.testing.assert_array_equal(metrics.per_example_error(logits, labels), expected_error)


def test_logit_scaled_confidence_is_accurate_when_p_rounds_to_one():
  # p_y = e^40 / (e^40 + 2): 1 - p_y underflows float32, the exact answer is 40 - log 2.
  logits = jnp.array([[40.0, 0.0, 0.0]])
  value = metrics.logit_scaled_confidence(logits, jnp.array([0]))
  np.testing.assert_allclose(value, [40.0 - np.log(2.0)], rtol=1e-6)


def test_split_metrics_and_gap(logits_and_labels):
  logits, labels = logits_and_labels
  out = metrics.split_metrics(logits, labels)
  assert out["loss"].shape == (3,) and out["error"].shape == (3,)
  np.testing.assert_allclose(out["error"], (logits.argmax(-1) != labels).mean(-1), rtol=1e-6)
  np.testing.assert_allclose(out["loss"], -_np_log_softmax(logits)[:, np.arange(7), labels]
                             .mean(-1), rtol=1e-5)
  np.testing.assert_allclose(metrics.forget_gap(jnp.array([0.1, 0.5]), 0.3), [-0.2, 0.2],
                             atol=1e-7)
  np.testing.assert_allclose(metrics.forget_gap(jnp.array([0.1, 0.5]), 0.3, absolute=True),
                             [0.2, 0.2], atol=1e-7)


def test_diverged_member_gives_nan_only_for_itself(logits_and_labels):
  logits, labels = logits_and_labels
  logits = logits.copy()
  logits[1] = np.nan
  out = metrics.split_metrics(logits, labels)
  assert np.isnan(out["error"][1]) and np.isnan(out["loss"][1])
  assert np.all(np.isfinite(np.asarray(out["error"])[[0, 2]]))
  np.testing.assert_array_equal(metrics.finite_members(logits), [True, False, True])


def test_masked_mean_over_members():
  values = jnp.array([[1.0, 10.0], [jnp.nan, 20.0], [3.0, jnp.inf]])
  np.testing.assert_allclose(metrics.masked_mean_over_members(values), [2.0, 15.0])
  mask = jnp.array([True, True, False])
  np.testing.assert_allclose(metrics.masked_mean_over_members(values, mask), [1.0, 15.0])
  all_bad = metrics.masked_mean_over_members(jnp.array([1.0, 2.0]), jnp.array([False, False]))
  assert np.isnan(all_bad)


def test_reference_gaps_hand_values():
  unlearned = {"forget_error": jnp.array([0.1, 0.4]), "test_error": jnp.array([0.2, 0.2]),
               "mia": jnp.array([0.5, jnp.nan])}
  retrained = {"forget_error": 0.2, "test_error": jnp.array([0.25, 0.1]), "mia": 0.55,
               "extra": 1.0}
  gaps = reference_gaps.reference_gaps(unlearned, retrained)
  np.testing.assert_allclose(gaps["forget_error_gap"], [0.1, 0.2], atol=1e-6)
  np.testing.assert_allclose(gaps["test_error_gap"], [0.05, 0.1], atol=1e-6)
  np.testing.assert_allclose(gaps["avg_gap"][0], (0.1 + 0.05 + 0.05) / 3, atol=1e-6)
  assert np.isnan(gaps["avg_gap"][1])  # A diverged member stays visible.
  assert "extra_gap" not in gaps
  with pytest.raises(KeyError, match="extra"):
    reference_gaps.reference_gaps(unlearned, retrained, keys=["extra"])


def test_prediction_agreement():
  a = jnp.array([[0, 1, 2, 3], [0, 0, 0, 0]])
  b = jnp.array([0, 1, 0, 0])
  np.testing.assert_allclose(reference_gaps.prediction_agreement(a, b), [0.5, 0.75])
