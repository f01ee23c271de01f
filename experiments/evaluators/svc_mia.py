"""SalUn's MIA-efficacy: an RBF SVC on true-class confidence trained retain-vs-test, applied to
the forget set (the fraction it calls non-members; higher = more forgotten). One SVC fit per
model is the sweep's costliest evaluation, so it scores the originals, the retrained references
and the models selected for privacy at the report's lambda (config.regions.lam) only."""
import os

from experiments.evaluators import Evaluator, Needs, register
from unlearn_jax.evaluation import mia


def _svc_mia(outputs, metrics, config):
  del metrics
  st = outputs.stats
  return {("forget", "mia_efficacy"): mia.per_member(
      mia.mia_efficacy, dict(retain_conf=st["retain"]["confidence"],
                             test_conf=st["test"]["confidence"],
                             forget_conf=st["forget"]["confidence"]),
      seed=0, max_train=config.eval.mia_max_train, workers=os.cpu_count() or 1)}


register(Evaluator("svc_mia", Needs(splits=("retain", "forget", "test")),
                   config_fields=("eval.mia_max_train",), per_member=_svc_mia,
                   scope="selected"))
