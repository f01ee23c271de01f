"""Evaluation of unlearned models: errors, membership inference (population attacks and the
per-example LiRA / U-LiRA), distance to retraining, the NeurIPS 2023 forgetting score,
validation-based tuning, decision regions and bias scenarios.

Pure library code (no flags, files or clock). Each submodule is one concept:

    from unlearn_jax.evaluation import metrics, mia, tuning
    err = metrics.split_metrics(logits_snc, labels)["error"]   # (S,)
"""
from unlearn_jax.evaluation import bias_scenarios
from unlearn_jax.evaluation import decision_regions
from unlearn_jax.evaluation import epsilon_score
from unlearn_jax.evaluation import lira
from unlearn_jax.evaluation import metrics
from unlearn_jax.evaluation import mia
from unlearn_jax.evaluation import reference_gaps
from unlearn_jax.evaluation import tuning

__all__ = [
    "bias_scenarios", "decision_regions", "epsilon_score", "lira", "metrics", "mia", "reference_gaps",
    "tuning",
]
