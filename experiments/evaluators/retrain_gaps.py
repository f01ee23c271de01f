"""Distance to the retrained reference of the same (seed, width): prediction agreement on the
forget and test sets, and SalUn's average gap over retain/forget/test error and the loss MIA."""
import numpy as np

from experiments.evaluators import Evaluator, Needs, register
from unlearn_jax import compile_cache
from unlearn_jax.evaluation import reference_gaps

GAP_METRICS = (("retain", "error"), ("forget", "error"), ("test", "error"), ("forget", "mia_loss"))


def _retrain_gaps(outputs, metrics, config):
  del config
  splits = ("forget", "test")
  agree = _agreement([outputs.stats[s]["pred"] for s in splits],
                     [outputs.retrained.stats[s]["pred"] for s in splits])
  out = {(s, "agree_retrained"): np.asarray(a) for s, a in zip(splits, agree)}
  # The gap is averaged over the GAP_METRICS that the configured evaluators measured. It stays
  # eager: compiled with the agreement, its mean rounded differently in the last bit.
  names = [k for k in GAP_METRICS if k in metrics and k in outputs.retrained_metrics]
  gaps = reference_gaps.reference_gaps(
      {f"{s}_{m}": metrics[(s, m)] for s, m in names},
      {f"{s}_{m}": outputs.retrained_metrics[(s, m)] for s, m in names})
  out[("all", "avg_gap")] = np.asarray(gaps["avg_gap"])
  return out


@compile_cache.jit
def _agreement(preds, reference_preds):
  # One program per member count: eagerly, four per split (compare, convert, mean, transfer).
  return [reference_gaps.prediction_agreement(p, r) for p, r in zip(preds, reference_preds)]


register(Evaluator("retrain_gaps", Needs(splits=("forget", "test"), retrained=True),
                   per_member=_retrain_gaps))
