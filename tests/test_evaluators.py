"""Evaluators on hand-made per-example outputs, and the registry's checks."""
import types

import numpy as np
import pytest

from experiments import evaluators
from experiments.stages import select


def _outputs(pred_forget, forget_labels, true_labels):
  splits = types.SimpleNamespace(y_train_clean=np.asarray(true_labels),
                                 forget_idx=np.arange(len(true_labels)))
  return evaluators.ModelOutputs(
      stats={"forget": {"pred": np.asarray(pred_forget)}},
      labels={"forget": np.asarray(forget_labels)}, splits=splits,
      scenario=types.SimpleNamespace(name="mislabeled"))


def test_mislabeled_metrics_on_a_hand_made_case():
  true = [0, 1, 2, 3]
  flipped = [1, 2, 3, 0]   # the labels the forget examples were trained with
  pred = [[1, 2, 3, 0],    # still reproduces every flipped label
          [0, 1, 3, 1]]    # recovers 2 true labels, reproduces 1 flipped label, 1 neither
  out = evaluators.REGISTRY.get("ground_truth").per_member(_outputs(pred, flipped, true), {},
                                                           None)
  np.testing.assert_allclose(out[("forget", "true_label_recovery")], [0.0, 0.5])
  np.testing.assert_allclose(out[("forget", "flipped_label_reproduced")], [1.0, 0.25])


def test_degenerate_flag_fires_on_a_model_pushed_to_chance():
  # 10 classes: chance error 0.9. Original validation error 0.1; halfway to chance is 0.5.
  flags = select.degenerate(np.array([0.12, 0.45, 0.55, 0.90, np.nan]), np.full(5, 0.1), 10,
                            0.5)
  np.testing.assert_array_equal(flags[:4], [0.0, 0.0, 1.0, 1.0])
  assert np.isnan(flags[4])


def test_every_built_in_evaluator_is_registered_and_unknown_names_are_refused():
  assert {"errors", "loss_mia", "svc_mia", "ground_truth", "retrain_gaps",
          "forgetting_score"} <= set(evaluators.REGISTRY.names())
  config = types.SimpleNamespace(eval=types.SimpleNamespace(evaluators=("errors", "lira")))
  with pytest.raises(ValueError, match=r"unknown evaluator\(s\) \['lira'\]; allowed"):
    evaluators.from_config(config)
