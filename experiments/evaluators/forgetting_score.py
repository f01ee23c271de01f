"""The NeurIPS 2023 unlearning challenge's forgetting score over a group of models of one width.

Compares, per forget example, the logit-scaled confidences of a group of models (the originals,
or a method's selected unlearned models) with those of the retrained references of the same
width (`unlearn_jax.evaluation.epsilon_score`); 1 = indistinguishable from retraining. Here the
groups are the run's seeds, so with few seeds the score is coarse and biased low: identical
distributions score about 0.38 at 3 models per side and 0.18-0.19 at 32-128 (read it next to
that calibration). Diverged members (non-finite confidences) are left out on both sides; below
`eval.epsilon_min_models` models per side no score is written.
"""
import numpy as np

from experiments.evaluators import Evaluator, Needs, ReportTable, register
from unlearn_jax.evaluation import epsilon_score


def _forgetting_score(stats, reference_stats, config):
  conf = stats[("forget", "logit_conf")]
  reference = reference_stats[("forget", "logit_conf")]
  conf = conf[np.all(np.isfinite(conf), axis=1)]
  reference = reference[np.all(np.isfinite(reference), axis=1)]
  # The score needs 3 models per side to have any bucket at all.
  if min(len(conf), len(reference)) < max(3, config.eval.epsilon_min_models):
    return {}
  return {("forget", "epsilon_score"): epsilon_score.forget_score(conf, reference)}


register(Evaluator(
    "forgetting_score", Needs(splits=("forget",), per_example=(("forget", "logit_conf"),)),
    config_fields=("eval.epsilon_min_models",), over_group=_forgetting_score,
    tables=(ReportTable("NeurIPS 2023 forgetting score over seeds (1 = like retraining; coarse "
                        "below ~32 models per side)", "forget", "epsilon_score", "privacy",
                        with_retrained=False),)))
