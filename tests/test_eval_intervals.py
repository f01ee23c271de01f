"""Bootstrap intervals (coverage in simulation) and three-valued verdicts."""
import numpy as np
import pytest

from unlearn_jax.evaluation import intervals as iv


def test_bootstrap_interval_covers_the_population_mean_about_95_percent_of_the_time():
  rng = np.random.default_rng(0)
  hits = 0
  trials = 300
  for t in range(trials):
    sample = rng.normal(loc=0.3, scale=1.0, size=20)
    low, high = iv.bootstrap_interval(sample, num_resamples=500, seed=t)
    hits += low <= 0.3 <= high
  # The percentile bootstrap under-covers a little at n = 20 (about 0.93).
  assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_interval_of_a_constant_is_that_constant_and_drops_diverged_rows():
  assert iv.bootstrap_interval(np.full(8, 0.25)) == (0.25, 0.25)
  low, high = iv.bootstrap_interval(np.array([0.1, np.nan, 0.1, np.inf]))
  assert (low, high) == pytest.approx((0.1, 0.1))
  assert all(np.isnan(iv.bootstrap_interval(np.array([0.3]))))


def test_bootstrap_interval_narrows_with_more_seeds_and_is_deterministic():
  rng = np.random.default_rng(1)
  small, large = rng.normal(size=5), rng.normal(size=500)
  w = lambda x: np.subtract(*iv.bootstrap_interval(x)[::-1])
  assert w(large) < w(small) / 4
  assert iv.bootstrap_interval(small, seed=3) == iv.bootstrap_interval(small, seed=3)


def test_verdicts_from_intervals():
  assert iv.verdict_at_least(0.1, 0.3, 0.0) == iv.HOLDS
  assert iv.verdict_at_least(-0.3, -0.1, 0.0) == iv.FAILS
  assert iv.verdict_at_least(-0.1, 0.2, 0.0) == iv.INCONCLUSIVE
  assert iv.verdict_at_most(0.01, 0.04, 0.05) == iv.HOLDS
  assert iv.verdict_at_most(0.06, 0.09, 0.05) == iv.FAILS
  assert iv.verdict_at_least(float("nan"), 1.0, 0.0) == iv.INCONCLUSIVE


def test_a_verdict_turns_inconclusive_when_the_seeds_disagree():
  agree = np.array([0.20, 0.22, 0.19, 0.21, 0.20, 0.23, 0.18, 0.21, 0.20, 0.22])
  disagree = np.array([0.4, -0.3, 0.5, -0.2, 0.35, -0.25, 0.3, -0.35, 0.45, -0.1])
  assert iv.verdict_at_least(*iv.bootstrap_interval(agree), 0.0) == iv.HOLDS
  assert iv.verdict_at_least(*iv.bootstrap_interval(disagree), 0.0) == iv.INCONCLUSIVE


def test_three_valued_combinations():
  H, F, I = iv.HOLDS, iv.FAILS, iv.INCONCLUSIVE
  assert iv.all_of([H, H]) == H and iv.all_of([H, I]) == I and iv.all_of([I, F]) == F
  assert iv.any_of([F, H]) == H and iv.any_of([F, I]) == I and iv.any_of([F, F]) == F
  assert iv.all_of([]) == iv.NOT_TESTABLE and iv.any_of([]) == iv.NOT_TESTABLE
