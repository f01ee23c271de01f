"""Tests for evaluation.mia: chance level, separation, class handling, hand-built SVC."""
import numpy as np
import pytest
from sklearn.svm import SVC

from unlearn_jax.evaluation import mia


def test_loss_mia_is_chance_for_same_distribution_and_one_when_separated():
  rng = np.random.default_rng(0)
  forget_labels = rng.integers(0, 4, 400)
  test_labels = rng.integers(0, 4, 1000)
  same = mia.loss_mia_accuracy(rng.exponential(size=400), forget_labels,
                               rng.exponential(size=1000), test_labels, seed=0)
  assert 0.4 <= same <= 0.6
  separated = mia.loss_mia_accuracy(0.01 * rng.random(400), forget_labels,
                                    2.0 + rng.random(1000), test_labels, seed=0)
  assert separated >= 0.99


def test_loss_mia_ignores_test_classes_absent_from_forget_set():
  rng = np.random.default_rng(1)
  forget_labels = rng.integers(0, 2, 300)
  test_labels = np.concatenate([rng.integers(0, 2, 600), np.full(600, 2)])
  test_losses = rng.exponential(size=1200)
  test_losses[test_labels == 2] += 50.0  # Trivially separable, but class 2 is never forgotten.
  score = mia.loss_mia_accuracy(rng.exponential(size=300), forget_labels, test_losses,
                                test_labels, seed=0)
  assert 0.4 <= score <= 0.6


def test_loss_mia_is_deterministic_and_validates_input():
  rng = np.random.default_rng(2)
  args = (rng.exponential(size=50), rng.integers(0, 3, 50), rng.exponential(size=80),
          rng.integers(0, 3, 80))
  assert mia.loss_mia_accuracy(*args, seed=3) == mia.loss_mia_accuracy(*args, seed=3)
  bad = np.array(args[0])
  bad[0] = np.nan
  with pytest.raises(ValueError, match="finite"):
    mia.loss_mia_accuracy(bad, *args[1:])
  with pytest.raises(ValueError, match="1-D"):
    mia.loss_mia_accuracy(np.ones((2, 50)), *args[1:])


def test_class_matched_subsample_follows_target_histogram():
  rng = np.random.default_rng(3)
  pool = np.repeat([0, 1, 2], [50, 50, 3])
  target = np.repeat([0, 1, 2], [10, 5, 6])  # Class 2 short by 3: filled from elsewhere.
  chosen = mia.class_matched_subsample(pool, target, size=21, rng=rng)
  assert len(np.unique(chosen)) == 21
  counts = np.bincount(pool[chosen], minlength=3)
  assert counts[2] == 3 and counts[0] >= 10 and counts[1] >= 5 and counts.sum() == 21


def test_mia_efficacy_equals_hand_built_svc():
  rng = np.random.default_rng(4)
  retain = rng.beta(8, 1, 120)
  test = rng.beta(2, 2, 120)
  forget = rng.beta(4, 2, 60)
  clf = SVC(C=3, gamma="auto", kernel="rbf").fit(
      np.concatenate([retain, test]).reshape(-1, 1), np.r_[np.ones(120), np.zeros(120)])
  expected = 1.0 - clf.predict(forget.reshape(-1, 1)).mean()
  assert mia.mia_efficacy(retain, test, forget) == pytest.approx(expected, abs=1e-12)
  # Forget examples that look like retain are called members; like test, non-members.
  assert mia.mia_efficacy(retain, test, rng.beta(8, 1, 60)) < 0.3
  assert mia.mia_efficacy(retain, test, rng.beta(2, 2, 60)) > 0.5


def test_mia_efficacy_balances_and_caps():
  assert mia.balanced_size(5000, 1000) == 1000
  assert mia.balanced_size(5000, 1000, max_train=300) == 300
  rng = np.random.default_rng(5)
  args = (rng.beta(8, 1, 500), rng.beta(2, 2, 100), rng.beta(4, 2, 50))
  value = mia.mia_efficacy(*args, seed=1, max_train=80)
  assert 0.0 <= value <= 1.0 and value == mia.mia_efficacy(*args, seed=1, max_train=80)


def test_per_member_loops_and_reports_nan_for_diverged_members():
  rng = np.random.default_rng(6)
  forget = rng.exponential(size=(3, 60))
  test = rng.exponential(size=(3, 90)) + np.array([[0.0], [0.0], [5.0]])
  forget[1, 4] = np.inf
  forget_labels, test_labels = rng.integers(0, 2, 60), rng.integers(0, 2, 90)
  scores = mia.per_member(mia.loss_mia_accuracy, dict(forget_losses=forget, test_losses=test),
                          forget_labels=forget_labels, test_labels=test_labels, seed=0)
  assert scores.shape == (3,) and np.isnan(scores[1])
  assert scores[0] == mia.loss_mia_accuracy(forget[0], forget_labels, test[0], test_labels)
  assert scores[2] > 0.95


def test_per_member_threads_give_the_same_scores():
  rng = np.random.default_rng(7)
  conf = dict(retain_conf=rng.uniform(0.5, 1, (4, 120)), test_conf=rng.uniform(0, 1, (4, 100)),
              forget_conf=rng.uniform(0.3, 1, (4, 40)))
  conf["forget_conf"][2, 0] = np.nan
  serial = mia.per_member(mia.mia_efficacy, conf, seed=3, max_train=80)
  threaded = mia.per_member(mia.mia_efficacy, conf, workers=3, seed=3, max_train=80)
  np.testing.assert_array_equal(serial, threaded)
  assert np.isnan(threaded[2]) and np.isfinite(threaded[[0, 1, 3]]).all()


def test_exact_1d_logistic_fit_matches_scikit_learn():
  from sklearn.linear_model import LogisticRegression
  rng = np.random.default_rng(3)
  x = rng.normal(size=(4, 300)) * 3
  y = (rng.random((4, 300)) < 1 / (1 + np.exp(-(0.8 * x - 0.4)))).astype(int)
  w, b = mia.fit_logistic_1d(x, y)
  for i in range(4):
    ref = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[i, :, None], y[i])
    np.testing.assert_allclose([w[i], b[i]], [ref.coef_[0, 0], ref.intercept_[0]], rtol=1e-6,
                               atol=1e-8)


def test_member_batched_loss_attack_agrees_with_the_scikit_learn_one():
  rng = np.random.default_rng(0)
  members = 30
  forget = np.abs(rng.normal(size=(members, 120))) * rng.uniform(0.05, 3, (members, 1))
  test = np.abs(rng.normal(size=(members, 400))) * rng.uniform(0.5, 2, (members, 1))
  forget[0] = 0.0                      # a memorised forget set: perfectly separable
  forget[1, 3] = np.nan                # a diverged member
  forget_labels, test_labels = rng.integers(0, 5, 120), rng.integers(0, 5, 400)
  fast = mia.loss_mia_accuracy_members(forget, forget_labels, test, test_labels, seed=2)
  assert np.isnan(fast[1])
  slow = np.array([mia.loss_mia_accuracy(forget[m], forget_labels, test[m], test_labels, seed=2)
                   for m in range(members) if m != 1])
  fast = np.delete(fast, 1)
  # lbfgs stops within its tolerance; only a held-out loss right at the threshold can differ.
  assert np.mean(fast == slow) >= 0.9
  np.testing.assert_allclose(fast, slow, atol=2 / 48 + 1e-9)
  assert fast[0] > 0.85   # near-zero test losses overlap the memorised ones
