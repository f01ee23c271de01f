"""Bias removal judged against the truth, under the sweep's ground-truth scenarios.

mislabeled: ('forget', 'true_label_recovery'), the fraction of forget examples predicted as their
TRUE (unflipped) label, and ('forget', 'flipped_label_reproduced'), the fraction still predicted
as the wrong label they were trained with (the bias left). backdoor: ('test', 'attack_success'),
the fraction of triggered test inputs (true class != target) classified as the target. Nothing
under the 'none' scenario.
"""
import numpy as np

from experiments.evaluators import Evaluator, Needs, ReportTable, register
from unlearn_jax.evaluation import bias_scenarios


def _ground_truth(outputs, metrics, config):
  del metrics, config
  scenario, splits, out = outputs.scenario, outputs.splits, {}
  if scenario.name == "mislabeled":
    true = splits.y_train_clean[splits.forget_idx]
    pred = outputs.stats["forget"]["pred"]
    out[("forget", "true_label_recovery")] = np.asarray(
        bias_scenarios.true_label_recovery(pred, true))
    out[("forget", "flipped_label_reproduced")] = np.mean(
        pred == outputs.labels["forget"][None], axis=-1)
  if scenario.name == "backdoor":
    out[("test", "attack_success")] = np.asarray(bias_scenarios.attack_success_rate(
        outputs.stats["test_triggered"]["pred"], splits.y_test, scenario.target))
  return out


register(Evaluator(
    "ground_truth", Needs(splits=("forget", "test_triggered")), per_member=_ground_truth,
    version=2,
    tables=(ReportTable("Ground truth, mislabeled forget set: fraction predicted as the TRUE "
                        "label", "forget", "true_label_recovery", "bias_removal"),
            ReportTable("Ground truth, mislabeled forget set: fraction still predicted as the "
                        "flipped (wrong) label", "forget", "flipped_label_reproduced",
                        "bias_removal"),
            ReportTable("Ground truth, backdoor: attack success rate on triggered test inputs",
                        "test", "attack_success", "bias_removal"))))
