"""Tests for evaluation.epsilon_score, against a slow literal transcription of the rules."""
import numpy as np
import pytest

from unlearn_jax.evaluation import epsilon_score

PER_UNIT = 10  # Coarser threshold grid than the challenge's 100 keeps these tests fast.


def _slow_epsilon(pos, neg, per_unit, delta=1e-5, cap=50.0):
  """Dense models x thresholds comparisons, written from the rules in the module docstring."""
  pos_range, neg_range = np.ptp(pos), np.ptp(neg)
  if min(pos_range, neg_range) / max(pos_range, neg_range) < 0.01:
    return cap
  rates = []
  # Single threshold: positive iff conf >= t.
  low, high = min(pos.min(), neg.min()), max(pos.max(), neg.max())
  for t in np.linspace(low, high, int(np.ceil((high - low) * per_unit))):
    rates.append((np.mean(neg >= t), np.mean(pos < t)))
  # Double threshold: the peakier sample is positive inside [left, right].
  peaky, broad = (neg, pos) if pos_range >= neg_range else (pos, neg)
  width = min(pos_range, neg_range)
  low, high = peaky.min() + width - 2.0, peaky.max() + 2.0
  for right in np.linspace(low, high, int(np.ceil((high - low) * per_unit))):
    for left in np.linspace(right - width - 2.0, right - width + 2.0, int(np.ceil(4 * per_unit))):
      rates.append((np.mean((left <= broad) & (broad <= right)),
                    np.mean(~((left <= peaky) & (peaky <= right)))))
  best = None
  for fpr, fnr in rates:
    if fpr == 0 and fnr == 0:
      eps = np.inf
    elif fpr == 0 or fnr == 0:
      continue
    else:
      bounds = [np.log(1 - delta - fpr) - np.log(fnr) if 1 - delta - fpr > 0 else np.nan,
                np.log(1 - delta - fnr) - np.log(fpr) if 1 - delta - fnr > 0 else np.nan]
      eps = max(np.nanmax(bounds), 0.0)
    best = eps if best is None else max(best, eps)
  return float(min(best, cap))


def test_matches_slow_transcription():
  rng = np.random.default_rng(0)
  unlearned = rng.normal(0.7, 1.0, size=(9, 5))
  retrained = rng.normal(0.0, 1.3, size=(7, 5))  # Unequal counts are allowed.
  fast = epsilon_score.per_example_epsilons(unlearned, retrained, thresholds_per_unit=PER_UNIT)
  slow = []
  for i in range(5):
    u, r = unlearned[:, i], retrained[:, i]
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    slow.append(_slow_epsilon(pos, neg, PER_UNIT))
  np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_identical_models_score_one_and_separated_score_zero():
  rng = np.random.default_rng(1)
  retrained = rng.normal(size=(16, 12))
  np.testing.assert_array_equal(
      epsilon_score.per_example_epsilons(retrained, retrained, thresholds_per_unit=PER_UNIT), 0.0)
  assert epsilon_score.forget_score(retrained, retrained, thresholds_per_unit=PER_UNIT) == 1.0
  separated = rng.normal(6.0, 1.0, size=(16, 12))
  eps = epsilon_score.per_example_epsilons(separated, retrained, thresholds_per_unit=PER_UNIT)
  np.testing.assert_array_equal(eps, epsilon_score.EPSILON_CAP)
  assert epsilon_score.forget_score(separated, retrained, thresholds_per_unit=PER_UNIT) == 0.0


def test_same_distribution_beats_shifted_by_a_margin():
  # Independent samples of one distribution do not score 1 (the estimate is biased upward with
  # few models, see the module docstring), but clearly above a shifted distribution.
  rng = np.random.default_rng(2)
  retrained = rng.normal(size=(32, 24))
  same = epsilon_score.forget_score(rng.normal(size=(32, 24)), retrained,
                                    thresholds_per_unit=PER_UNIT)
  shifted = epsilon_score.forget_score(rng.normal(2.0, 1.0, size=(32, 24)), retrained,
                                       thresholds_per_unit=PER_UNIT)
  baseline = epsilon_score.retrained_baseline_score(retrained, thresholds_per_unit=PER_UNIT)
  assert same > shifted + 0.08
  assert baseline > shifted + 0.08


def test_buckets_and_score_from_epsilons():
  points = epsilon_score.bucket_points(512)  # ceil(log 511) = 7 -> 14 buckets of 0.5.
  assert len(points) == 14 and points[0] == 1.0 and points[-1] == 2.0 / 2 ** 14
  eps = np.array([0.2, 0.5, 0.99, 6.9, 7.0, 50.0])
  expected = (1.0 + 0.5 + 0.5 + 2.0 / 2 ** 14 + 0.0 + 0.0) / 6
  assert epsilon_score.score_from_epsilons(eps, 512) == pytest.approx(expected)
  assert len(epsilon_score.bucket_points(8)) == 4  # ceil(log 7) = 2.


def test_peaky_unlearned_distribution_gets_the_cap_and_few_models_refused():
  rng = np.random.default_rng(3)
  retrained = rng.normal(size=(10, 2))
  peaky = np.full((10, 2), 0.1) + 1e-5 * rng.normal(size=(10, 2))
  np.testing.assert_array_equal(
      epsilon_score.per_example_epsilons(peaky, retrained, thresholds_per_unit=PER_UNIT), 50.0)
  with pytest.raises(ValueError, match="at least 3"):
    epsilon_score.forget_score(retrained[:2], retrained[:2])
  assert epsilon_score.utility_adjusted_score(0.5, 0.9, 1.0, 0.8, 0.8) == pytest.approx(0.45)


def test_resolution_at_n_models_per_side():
  """The module docstring's resolution claims: rates are multiples of 1/n, so finite epsilons
  are log((n - i - n delta) / j) with 1 <= i, j <= n - 1, the largest about log(n - 1)."""
  delta = epsilon_score.DELTA
  for n in (3, 5):
    allowed = {0.0, epsilon_score.EPSILON_CAP} | {
        float(np.log((n - i - n * delta) / j)) for i in range(1, n) for j in range(1, n)
        if (n - i - n * delta) / j > 1}
    rng = np.random.default_rng(n)
    eps = epsilon_score.per_example_epsilons(rng.normal(size=(n, 30)), rng.normal(size=(n, 30)))
    assert all(min(abs(e - a) for a in allowed) < 1e-9 for e in eps), sorted(set(eps))
    finite = eps[eps < epsilon_score.EPSILON_CAP]
    assert finite.max() <= np.log(n - 1) + 1e-9
  # At n = 3 the only finite non-zero epsilon is log 2: each example earns 1, 1/2 or 0.
  np.testing.assert_array_equal(epsilon_score.bucket_points(3), [1.0, 0.5])
  rng = np.random.default_rng(0)
  same = [epsilon_score.forget_score(rng.normal(size=(3, 40)), rng.normal(size=(3, 40)))
          for _ in range(3)]
  assert all(0.25 < s < 0.5 for s in same), same   # about 0.36 for identical distributions
