"""SCRUB's membership-inference attack: a logistic regression on the per-example loss, forget vs
test examples of the same classes, 5-split cross-validated accuracy (0.5 = private). Every member
at once (`mia.loss_mia_accuracy_members`)."""
from experiments.evaluators import Evaluator, Needs, register
from unlearn_jax.evaluation import mia


def _loss_mia(outputs, metrics, config):
  del metrics, config
  return {("forget", "mia_loss"): mia.loss_mia_accuracy_members(
      outputs.stats["forget"]["loss"], outputs.labels["forget"], outputs.stats["test"]["loss"],
      outputs.labels["test"], seed=0)}


register(Evaluator("loss_mia", Needs(splits=("forget", "test")), per_member=_loss_mia, version=2))
