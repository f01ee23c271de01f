"""LiRA statistics: Gaussian fits and likelihood ratios by hand, AUC and TPR at FPR against
scikit-learn, and the attack's behaviour where the answer is known (nothing to find, a leak)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from unlearn_jax.evaluation import lira


def test_gaussian_fit_by_hand_with_mask_and_a_diverged_model():
  samples = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0], [7.0, 8.0]])
  mask = np.array([[1, 1], [1, 1], [1, 0], [0, 1]], bool)
  mean, std, count = lira.gaussian_fit(samples, mask)
  # Column 0: {1, 3, 5}; column 1: {2, 8} (NaN and unmasked values left out).
  np.testing.assert_allclose(mean, [3.0, 5.0])
  np.testing.assert_allclose(std, [np.sqrt(8 / 3), 3.0])
  assert count.tolist() == [3, 2]
  mean, std, _ = lira.gaussian_fit(np.array([[1.0], [np.nan]]))
  assert np.isnan(mean[0]) and np.isnan(std[0])   # one value: no Gaussian


def test_online_and_offline_scores_by_hand():
  fit_in = (np.array([2.0]), np.array([1.0]))
  fit_out = (np.array([0.0]), np.array([2.0]))
  s = np.array([[1.0]])
  # log N(1; 2, 1) - log N(1; 0, 4) = (-0.5 - 0) - (-0.125 - log 2)
  expected = (-0.5 * 1.0 - np.log(1.0)) - (-0.5 * 0.25 - np.log(2.0))
  np.testing.assert_allclose(lira.online_scores(s, fit_in, fit_out), [[expected]])
  np.testing.assert_allclose(lira.offline_scores(s, fit_out), [[0.5]])


@pytest.mark.parametrize("ties", [False, True])
def test_auc_and_tpr_at_fpr_match_scikit_learn(ties):
  rng = np.random.default_rng(1)
  pos, neg = rng.normal(1.0, 1.0, 700), rng.normal(0.0, 1.0, 3000)
  if ties:
    pos, neg = np.round(pos, 1), np.round(neg, 1)
  y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
  scores = np.r_[pos, neg]
  assert lira.roc_auc(pos, neg) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
  fpr, tpr, _ = roc_curve(y, scores)
  for target in (0.001, 0.01, 0.1):
    assert lira.tpr_at_fpr(pos, neg, target) == pytest.approx(tpr[fpr <= target].max())


def test_tpr_at_fpr_edge_cases_by_hand():
  neg = np.array([0.0, 1.0, 2.0, 3.0])
  # One false positive allowed of four at 25%: threshold above 2.
  assert lira.tpr_at_fpr([2.5, 3.5, 1.0], neg, 0.25) == pytest.approx(2 / 3)
  # None allowed at 10%: above the largest negative only.
  assert lira.tpr_at_fpr([2.5, 3.5, 1.0], neg, 0.1) == pytest.approx(1 / 3)
  assert lira.tpr_at_fpr([0.0], neg, 1.0) == 1.0
  assert np.isnan(lira.roc_auc([], neg))


def _shadow_world(rng, n_examples, n_shadows, leak):
  """Statistics where members sit `leak` above non-members, each example with its own level."""
  level = rng.normal(0, 2, n_examples)
  inside = rng.random((n_shadows, n_examples)) < 0.5
  stats = level + leak * inside + rng.normal(0, 1, (n_shadows, n_examples))
  return level, inside, stats


def test_attack_is_at_chance_when_there_is_nothing_to_find():
  rng = np.random.default_rng(0)
  level, inside, stats = _shadow_world(rng, 400, 64, leak=0.0)
  fit_in, fit_out = lira.gaussian_fit(stats, inside), lira.gaussian_fit(stats, ~inside)
  targets = level + rng.normal(0, 1, (2, 20, 400))   # members and non-members alike
  for score in (lira.online_scores(targets, fit_in[:2], fit_out[:2]),
                lira.offline_scores(targets, fit_out[:2])):
    m = lira.attack_metrics(score[0], score[1], (0.01,))
    assert abs(m["auc"] - 0.5) < 0.03
    assert m["tpr@0.01"] < 0.03


def test_attack_catches_a_per_example_leak_that_a_global_threshold_misses():
  rng = np.random.default_rng(0)
  level, inside, stats = _shadow_world(rng, 400, 64, leak=3.0)
  fit_in, fit_out = lira.gaussian_fit(stats, inside), lira.gaussian_fit(stats, ~inside)
  members = level + 3.0 + rng.normal(0, 1, (10, 400))
  others = level + rng.normal(0, 1, (10, 400))
  online = lira.attack_metrics(lira.online_scores(members, fit_in[:2], fit_out[:2]),
                               lira.online_scores(others, fit_in[:2], fit_out[:2]), (0.01,))
  raw = lira.attack_metrics(members, others, (0.01,))   # one threshold on the statistic
  assert online["auc"] > 0.95 and online["tpr@0.01"] > 0.5
  assert raw["tpr@0.01"] < online["tpr@0.01"] / 2


def test_two_way_bootstrap_interval_covers_the_estimate_and_shrinks_with_data():
  rng = np.random.default_rng(0)
  widths = []
  for n in (50, 800):
    pos, neg = rng.normal(0.5, 1, (6, n)), rng.normal(0, 1, (6, n))
    stat = lambda p, q: {"auc": lira.roc_auc(p, q)}
    low, high = lira.two_way_bootstrap(pos, neg, stat, num_resamples=200)["auc"]
    assert low < lira.roc_auc(pos, neg) < high
    widths.append(high - low)
  assert widths[1] < widths[0] / 2
