"""Stage: the configured evaluators' per-member metrics of one model set.

Logits of the splits the evaluators need are computed once and turned into per-example
statistics (loss, error, true-class confidence, predicted label, logit-scaled confidence); each
evaluator maps them to {(split, metric): (S,)}. Every metric of a diverged member (non-finite
parameters), and every comparison with a diverged reference, is NaN. Cached per model set under
a key of the members, the models' identity, the data's fingerprint and each evaluator's config
fields and version.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import evaluators as evaluators_lib
from experiments import results, stage_cache
from experiments.layout import bucket_tag
from experiments.stages.model_set import ModelSet
from unlearn_jax import compile_cache
from unlearn_jax import train as train_lib
from unlearn_jax.evaluation import metrics as metrics_lib

VERSION = 1
PAIRED_SPLITS = ("forget", "test")   # predictions kept for comparisons with a paired set


@dataclasses.dataclass
class Evaluated:
  models: ModelSet
  metrics: evaluators_lib.Metrics              # {(split, metric): (S,)}
  preds: dict[str, np.ndarray]                 # {split: (S, N)} predicted labels
  per_example: dict[tuple[str, str], np.ndarray]   # kept for group evaluators: (S, N)

  def paired(self, origin) -> "Evaluated":
    """This set's members reordered to pair with `origin` (indices into this set)."""
    idx = np.asarray(origin)
    return Evaluated(self.models, {k: v[idx] for k, v in self.metrics.items()},
                     {k: v[idx] for k, v in self.preds.items()},
                     {k: v[idx] for k, v in self.per_example.items()})


def split_labels(splits) -> dict:
  """Labels the errors are measured against; forget labels are the (possibly flipped) train ones."""
  return {"retain": splits.y_train[splits.retain_idx], "forget": splits.y_train[splits.forget_idx],
          "val": splits.y_val, "test": splits.y_test, "test_triggered": splits.y_test}


@compile_cache.jit
def _per_example(logits, labels):
  # One compiled function per split shape instead of one per eager op.
  return {"loss": metrics_lib.per_example_loss(logits, labels),
          "error": metrics_lib.per_example_error(logits, labels),
          "confidence": metrics_lib.true_class_confidence(logits, labels),
          "pred": metrics_lib.predicted_labels(logits),
          "logit_conf": metrics_lib.logit_scaled_confidence(logits, labels)}


def predict_splits(ctx, models: ModelSet, needed: set[str]) -> dict:
  """Logits (S, N, C) of the needed splits, in a fixed order (the order rows are written in)."""
  splits, scenario = ctx.splits, ctx.scenario
  predict = lambda x: train_lib.predict_logits(
      models.model, models.variables.params, models.variables.batch_stats, jnp.asarray(x),
      batch_size=ctx.config.eval_batch_size, strategy=models.strategy)
  out = {}
  if needed & {"retain", "forget"}:
    train_logits = predict(splits.x_train)
    out["retain"] = train_logits[:, splits.retain_idx]
    out["forget"] = train_logits[:, splits.forget_idx]
  if "val" in needed:
    out["val"] = predict(splits.x_val)
  if "test" in needed:
    out["test"] = predict(splits.x_test)
  if "test_triggered" in needed and scenario.x_test_triggered is not None:
    out["test_triggered"] = predict(scenario.x_test_triggered)
  return out


def _evaluators(ctx, scope: str | None) -> list:
  return [e for e in ctx.evaluators if scope is None or e.scope == scope]


def cache_key(ctx, models: ModelSet, reference: Evaluated | None, scope: str | None) -> dict:
  return {"stage": "evaluate", "version": VERSION, "members": models.members,
          "models": models.identity, "data": ctx.fingerprint,
          "eval_batch_size": ctx.config.eval_batch_size,
          "reference": None if reference is None else reference.models.identity,
          "evaluators": [{"name": e.name, "version": e.version,
                          "config": evaluators_lib.config_values(e, ctx.config)}
                         for e in _evaluators(ctx, scope)]}


def run(ctx, models: ModelSet, reference: Evaluated | None = None, scope: str | None = None
        ) -> Evaluated:
  """Metrics of `models`; `reference`: the retrained references' evaluation (None for those).

  scope: run only the evaluators of that scope ('all' for a whole grid, 'selected' for the
  models selection picked); None runs every evaluator (originals, retrained references).
  """
  paired = None if reference is None else reference.paired(models.origin)
  arrays = stage_cache.load_or_compute(
      ctx.layout.evaluation(models.name, models.widths),
      cache_key(ctx, models, reference, scope),
      lambda: _compute(ctx, models, paired, _evaluators(ctx, scope)), write=ctx.writer)
  newly = arrays["diverged"] & ~models.diverged
  if newly.any():   # finite parameters, non-finite outputs (e.g. huge but finite weights)
    models.diverged |= newly
    ctx.note_diverged(f"{models.name} (non-finite outputs)", bucket_tag(models.widths),
                      models, only=newly)
  out = Evaluated(models, {}, {}, {})
  for name, values in arrays.items():
    if name == "diverged":
      continue
    kind, _, rest = name.partition(":")
    if kind == "metric":
      out.metrics[tuple(rest.split(":"))] = values
    elif kind == "pred":
      out.preds[rest] = values
    else:
      out.per_example[tuple(rest.split(":"))] = values
  return out


def _compute(ctx, models: ModelSet, paired: Evaluated | None, evaluators: list) -> dict:
  active = [e for e in evaluators if paired is not None or not e.needs.retrained]
  needed = {s for e in evaluators for s in e.needs.splits}
  needed |= set(PAIRED_SPLITS) | {s for e in evaluators for s, _ in e.needs.per_example}
  labels = split_labels(ctx.splits)
  logits = predict_splits(ctx, models, needed)
  stats = {s: jax.tree.map(np.asarray, _per_example(lg, labels[s])) for s, lg in logits.items()}
  reference_outputs = None
  if paired is not None:
    reference_outputs = evaluators_lib.ModelOutputs(
        {s: {"pred": p} for s, p in paired.preds.items()}, labels, ctx.splits, ctx.scenario)
  outputs = evaluators_lib.ModelOutputs(
      stats, labels, ctx.splits, ctx.scenario, reference_outputs,
      None if paired is None else paired.metrics)
  metrics = {}
  for e in active:
    if e.per_member is not None:
      metrics.update(e.per_member(outputs, metrics, ctx.config))
  # A diverged model's outputs mean nothing, nor does agreement with a diverged reference.
  bad = models.diverged | ~np.all([np.isfinite(lg).all(axis=(1, 2)) for lg in logits.values()],
                                  axis=0)
  arrays = {"diverged": bad}
  for (split, metric), values in metrics.items():
    values = np.asarray(values)
    member_bad = bad
    if paired is not None and (metric.endswith("retrained") or split == "all"):
      member_bad = bad | paired.models.diverged[models.origin]
    arrays[f"metric:{split}:{metric}"] = np.where(member_bad, np.nan, values)
  for split in PAIRED_SPLITS:
    arrays[f"pred:{split}"] = stats[split]["pred"]
  for split, stat in {k for e in evaluators for k in e.needs.per_example}:
    arrays[f"example:{split}:{stat}"] = np.where(bad[:, None], np.nan, stats[split][stat])
  return arrays


def group_rows(ctx, stage: str, method: str, evaluated: Evaluated, reference: Evaluated,
               chosen=None, **labels) -> list[dict]:
  """Rows of the group evaluators (scores over many models), one group per width: the members
  `chosen` (default all) of `evaluated` against every retrained reference of the same width."""
  chosen = np.arange(len(evaluated.models.members)) if chosen is None else np.asarray(chosen)
  widths = evaluated.models.member_widths
  reference_widths = reference.models.member_widths
  rows = []
  for e in ctx.evaluators:
    if e.over_group is None:
      continue
    for w in evaluated.models.widths:
      sel = chosen[widths[chosen] == w]
      group = {k: v[sel] for k, v in evaluated.per_example.items()}
      ref = {k: v[reference_widths == w] for k, v in reference.per_example.items()}
      for (split, metric), value in e.over_group(group, ref, ctx.config).items():
        rows.append(results.row(stage=stage, method=method, width=w, seed="all", split=split,
                                metric=metric, value=float(value), **labels))
  return rows
