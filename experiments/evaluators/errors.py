"""Errors and mean losses on every split, the training error and the forget-validation gap.

The hyperparameter selection reads ('val', 'error') and ('forget', 'error') from here.
"""
from experiments.evaluators import Evaluator, ModelOutputs, Needs, register


def _errors(outputs: ModelOutputs, metrics, config):
  del metrics, config
  out = {}
  for split, st in outputs.stats.items():
    out[(split, "error")], out[(split, "loss")] = st["error"].mean(-1), st["loss"].mean(-1)
  n_r, n_f = len(outputs.labels["retain"]), len(outputs.labels["forget"])
  out[("train", "error")] = ((n_r * out[("retain", "error")] + n_f * out[("forget", "error")])
                             / (n_r + n_f))
  out[("forget", "gap_val")] = out[("forget", "error")] - out[("val", "error")]
  return out


register(Evaluator("errors", Needs(), per_member=_errors))
