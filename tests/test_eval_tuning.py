"""Tests for evaluation.tuning: known optimum, ties, divergence, seeds, registry errors."""
import numpy as np
import pytest

from unlearn_jax.evaluation import tuning
from unlearn_jax.registry import Registry

VAL = np.array([0.30, 0.20, 0.25, 0.20])
FORGET = np.array([0.30, 0.00, 0.25, 0.20])


def test_privacy_picks_hand_computed_best():
  # lam=0.4: 0.6*val + 0.4*|forget - val| = [0.18, 0.20, 0.15, 0.12] -> index 3.
  values = tuning.objective_values("privacy", 0.4, val_error=VAL, forget_error=FORGET)
  np.testing.assert_allclose(values, [0.18, 0.20, 0.15, 0.12])
  assert tuning.select("privacy", 0.4, val_error=VAL, forget_error=FORGET) == 3


def test_bias_removal_picks_hand_computed_best():
  # lam=0.6: 0.4*val - 0.6*forget = [-0.06, 0.08, -0.05, -0.04] -> index 0.
  assert tuning.select("bias_removal", 0.6, val_error=VAL, forget_error=FORGET) == 0
  # lam=0.2: 0.8*val - 0.2*forget = [0.18, 0.16, 0.15, 0.12] -> index 3.
  assert tuning.select("bias_removal", 0.2, val_error=VAL, forget_error=FORGET) == 3


def test_retrain_matching_picks_the_point_closest_to_each_seeds_retrained_reference():
  retain = np.array([0.00, 0.10, 0.05, 0.20])
  ref = {"retain": 0.05, "forget": 0.25, "val": 0.25}
  # |retain - .05| + |forget - .25| + |val - .25|, / 3:
  #   [(.05 + .05 + .05), (.05 + .25 + .05), (0 + 0 + 0), (.15 + .05 + .05)] / 3
  # lam=0.8: 0.2 * val + 0.8 * gap = [0.10, 0.1333, 0.05, 0.1067] -> index 2.
  values = tuning.objective_values("retrain_matching", 0.8, val_error=VAL, forget_error=FORGET,
                                   retain_error=retain, reference=ref)
  np.testing.assert_allclose(values, [0.10, 0.04 + 0.8 * 0.35 / 3, 0.05, 0.04 + 0.8 * 0.25 / 3])
  assert tuning.select("retrain_matching", 0.8, val_error=VAL, forget_error=FORGET,
                       retain_error=retain, reference=ref) == 2
  # Per seed: a second seed whose reference is the original-like point 1 picks it.
  other = {"retain": 0.10, "forget": 0.00, "val": 0.20}
  both = {k: np.array([[ref[k]], [other[k]]]) for k in ref}
  np.testing.assert_array_equal(
      tuning.select("retrain_matching", 0.8, val_error=np.stack([VAL, VAL]),
                    forget_error=np.stack([FORGET, FORGET]), retain_error=np.stack([retain] * 2),
                    reference=both), [2, 1])
  assert tuning.needs("retrain_matching") == ("retain_error", "reference")
  assert tuning.needs("privacy") == ()
  with pytest.raises(ValueError, match="needs reference"):
    tuning.select("retrain_matching", 0.8, val_error=VAL, forget_error=FORGET,
                  retain_error=retain)
  with pytest.raises(ValueError, match=r"never test data"):
    tuning.select("retrain_matching", 0.8, val_error=VAL, forget_error=FORGET,
                  retain_error=retain, reference={**ref, "test": 0.1})


def test_ties_go_to_lowest_index_and_diverged_points_are_skipped():
  val = np.array([0.5, 0.1, 0.3, 0.1])
  forget = val.copy()  # privacy objective = 0.8*val: indices 1 and 3 tie.
  assert tuning.select("privacy", 0.2, val_error=val, forget_error=forget) == 1
  mask = np.array([True, False, True, True])
  assert tuning.select("privacy", 0.2, val_error=val, forget_error=forget, finite_mask=mask) == 3
  val_nan = np.array([0.5, np.nan, 0.3, np.inf])
  assert tuning.select("privacy", 0.2, val_error=val_nan, forget_error=forget) == 2


def test_all_diverged_returns_minus_one_or_raises():
  val = np.array([[np.nan, np.nan], [0.3, 0.2]])
  forget = np.zeros((2, 2))
  np.testing.assert_array_equal(
      tuning.select("privacy", 0.2, val_error=val, forget_error=forget), [-1, 1])
  with pytest.raises(ValueError, match="diverged"):
    tuning.select("privacy", 0.2, val_error=val, forget_error=forget, raise_if_all_diverged=True)


def test_seed_axis_lambdas_and_take_selected():
  val = np.stack([VAL, VAL[::-1]])  # (S=2, G=4)
  forget = np.stack([FORGET, FORGET[::-1]])
  picks = tuning.select_per_lambda("privacy", val_error=val, forget_error=forget)
  assert picks.shape == (len(tuning.DEFAULT_LAMBDAS), 2)
  np.testing.assert_array_equal(picks[1], [3, 0])  # lam=0.4, second seed reversed.
  test_error = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
  np.testing.assert_array_equal(tuning.take_selected(test_error, picks[1]), [4.0, 5.0])
  out = tuning.take_selected(test_error, np.array([-1, 2]))
  assert np.isnan(out[0]) and out[1] == 7.0


def test_unknown_objective_and_bad_lambda_raise():
  with pytest.raises(ValueError, match=r"'accuracy'.*bias_removal.*privacy"):
    tuning.select("accuracy", 0.2, val_error=VAL, forget_error=FORGET)
  with pytest.raises(ValueError, match="lambda"):
    tuning.select("privacy", 1.5, val_error=VAL, forget_error=FORGET)


def test_signature_refuses_test_data():
  with pytest.raises(TypeError):
    tuning.select("privacy", 0.2, VAL, FORGET)  # pylint: disable=too-many-function-args
  with pytest.raises(TypeError):
    tuning.select("privacy", 0.2, val_error=VAL, forget_error=FORGET,
                  test_error=VAL)  # pylint: disable=unexpected-keyword-arg


def test_finite_mask_is_per_seed_and_grid_point_or_per_seed():
  val = np.tile([0.1, 0.2, 0.3], (3, 1))  # (S=3, G=3)
  per_seed = np.array([False, True, True])
  np.testing.assert_array_equal(
      tuning.select("privacy", 0.2, val_error=val, forget_error=val, finite_mask=per_seed),
      [-1, 0, 0])
  per_point = np.array([[True, True, True], [False, True, True], [False, False, False]])
  np.testing.assert_array_equal(
      tuning.select("privacy", 0.2, val_error=val, forget_error=val, finite_mask=per_point),
      [0, 1, -1])
  np.testing.assert_array_equal(
      tuning.select_per_lambda("privacy", val_error=val, forget_error=val,
                               finite_mask=per_seed)[-1], [-1, 0, 0])
  with pytest.raises(ValueError, match=r"finite_mask has shape \(2,\); expected \(3, 3\)"):
    tuning.select("privacy", 0.2, val_error=val, forget_error=val, finite_mask=[True, False])


def test_register_objective(monkeypatch):
  # A copy of the registry, so the test leaves the module's objectives as they were.
  monkeypatch.setattr(tuning, "OBJECTIVES", Registry("tuning objective",
                                                     dict(tuning.OBJECTIVES.items())))
  name = "val_only_for_test"
  tuning.register_objective(name, lambda val, forget, lam: val)
  assert tuning.select(name, 0.2, val_error=np.array([0.3, 0.1]),
                       forget_error=np.array([0.0, 0.9])) == 1
  with pytest.raises(ValueError, match="already"):
    tuning.register_objective(name, lambda val, forget, lam: val)
