"""The width sweep as a library function: `run(config, workdir)`.

For every width bucket (widths that share one padded, vmapped member axis): train the originals
and the retrained references, evaluate both; then for every method: unlearn every original over
the method's grid, evaluate, select hyperparameters per (goal, lambda) on validation data, and at
`config.regions.lam` score the selected models as a group and probe their decision regions;
optionally the many-model protocols (forgetting score, shadow-model membership attack).
Finally the report stage writes `results.csv`, figures and `report.md`. Each stage keeps its own
cache in the workdir (see `experiments.stages`): a killed run continues where it stopped.
Stages that do not depend on each other run side by side (`experiments.stage_pool`); results do
not depend on how many do.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import jax

from experiments import config_checks, context, results, setup, stage_pool, workdir_lock
from experiments.layout import Layout, bucket_tag
from experiments.stages.model_set import ModelSet
from experiments.stages import (evaluate, forgetting_score, lira, regions, report, select,
                                train, unlearn)
from unlearn_jax.train import Progress, variable_structure, width_buckets


def run(config, workdir: str) -> dict:
  """Runs every stage; returns {'rows': result rows, 'wall_s': seconds}."""
  start = time.time()
  config_checks.check(config)
  layout = Layout(workdir)
  with workdir_lock.hold(layout.lock, take=jax.process_index() == 0):
    report.mark_started(layout, jax.process_index() == 0)
    setup.configure_jax(config)
    ctx = context.build(config, layout)
    methods = [m for m in config.unlearn.methods if m != "retrain"]
    buckets = _buckets(ctx)
    progress = _StageProgress(len(buckets) * (2 + len(methods)))
    rows, timings = [], {}
    with stage_pool.StagePool(stage_pool.resolve_workers(config)) as pool:
      # Work is queued as soon as it can start: every bucket's training first, then a bucket's
      # methods once this thread has evaluated its references; so the workers keep busy while
      # this thread evaluates. Each bucket notes diverged members in a context of its own,
      # merged in bucket order, so the report lists them as a one-at-a-time run would.
      contexts = [dataclasses.replace(ctx, diverged=[]) for _ in buckets]
      trained = [[pool.submit(train.run, bctx, name, widths) for name in ("original", "retrained")]
                 for bctx, widths in zip(contexts, buckets)]
      started = [_start_bucket(bctx, pool, widths, [t.result() for t in tasks], methods, timings,
                               progress)
                 for bctx, widths, tasks in zip(contexts, buckets, trained)]
      for bctx, bucket in zip(contexts, started):
        rows += _finish_bucket(bctx, pool, bucket, methods, timings, progress)
        ctx.diverged.extend(bctx.diverged)
    return report.run(ctx, rows, timings, time.time() - start)


class _StageProgress:
  """One log line per finished stage, with rate and ETA."""

  def __init__(self, total: int):
    self._progress, self._done = Progress("sweep", total, unit="stage", every_s=0), 0

  def advance(self, what: str) -> None:
    self._done += 1
    self._progress.update(self._done, what)


def _buckets(ctx) -> list[tuple]:
  c = ctx.config
  structure = functools.lru_cache(None)(lambda w: variable_structure(
      c.model.name, w, ctx.splits.num_classes, ctx.sample_x, **dict(c.model.kwargs)))
  return width_buckets(c.widths, c.bucket_max_ratio, structure)


@dataclasses.dataclass
class _StartedBucket:
  widths: tuple
  original: train.TrainedBucket
  retrained: ModelSet
  rows: list[dict]
  method_tasks: list


def _start_bucket(ctx, pool, widths, trained, methods, timings, progress) -> _StartedBucket:
  """Evaluates a bucket's trained models and queues its methods."""
  tag = bucket_tag(widths)
  original, retrained = trained
  for t in trained:
    timings[f"train {t.models.name} {tag}"] = t.models.seconds
    progress.advance(f"({t.models.name} widths {tag})")
  orig, retr = original.models, retrained.models
  retr_eval = evaluate.run(ctx, retr)
  orig_eval = evaluate.run(ctx, orig, retr_eval)
  refs = regions.ReferenceLabels(ctx.probe, orig, retr)
  rows = (results.member_rows("original", "original", orig.members, orig_eval.metrics)
          + results.member_rows("retrained", "retrain", retr.members, retr_eval.metrics)
          + results.member_rows("regions", "retrain", retr.members,
                                regions.retrain_vs_original(ctx, refs, orig, retr))
          + evaluate.group_rows(ctx, "original", "original", orig_eval, retr_eval))
  tasks = [pool.submit(_method, ctx, name, original, orig_eval, retr_eval, refs)
           for name in methods]
  return _StartedBucket(widths, original, retr, rows, tasks)


def _finish_bucket(ctx, pool, bucket: _StartedBucket, methods, timings, progress) -> list[dict]:
  """A bucket's rows: its references', its methods' and the many-model protocols'."""
  tag, rows = bucket_tag(bucket.widths), list(bucket.rows)
  picks = {}   # method -> (unlearned models, members selected for privacy at regions.lam)
  for name, task in zip(methods, bucket.method_tasks):
    unlearned, method_rows, chosen = task.result()
    rows += method_rows
    picks[name] = (unlearned, chosen)
    timings[f"unlearn {name} {tag}"] = unlearned.seconds
    progress.advance(f"({name} widths {tag})")
  if forgetting_score.enabled(ctx.config):
    rows += forgetting_score.run(ctx, bucket.widths, bucket.original, {
        m: picks[m] for m in ctx.config.forgetting_score.methods if m in picks}, pool)
  if lira.enabled(ctx.config):
    lira_rows, seconds = lira.run(ctx, bucket.widths, bucket.original, bucket.retrained,
                                  {m: picks[m] for m in ctx.config.lira.methods if m in picks},
                                  pool)
    rows += lira_rows
    timings.update(seconds)
  return rows


def _method(ctx, name, original, orig_eval, retr_eval, refs):
  """One method's stages: unlearn, evaluate, select, score and probe the selected models."""
  unlearned = unlearn.run(ctx, name, original)
  method_rows, chosen = _method_rows(ctx, unlearned, orig_eval, retr_eval, refs)
  return unlearned, method_rows, chosen


def _method_rows(ctx, unl, orig_eval, retr_eval, refs) -> tuple[list[dict], list]:
  """Rows of one method: every grid point, then the selected points per (goal, lambda), each
  flagged ('val', 'degenerate') when it is near chance; and the members selected for privacy
  at config.regions.lam."""
  config = ctx.config
  grid = evaluate.run(ctx, unl, retr_eval, scope="all")
  rows = results.member_rows("unlearned", unl.name, unl.members, grid.metrics)
  choices = {(goal, lam): select.run(grid.metrics, unl.origin, retr_eval.metrics, goal, lam,
                                     f"{unl.name} widths {bucket_tag(unl.widths)}")
             for goal in config.eval.goals for lam in config.eval.lambdas}
  # The costly evaluators (privacy attacks) score only the models picked for privacy at the
  # report's lambda (regions.lam).
  picked = sorted(int(j) for j in choices.get(("privacy", config.regions.lam), []))
  position = {j: i for i, j in enumerate(picked)}
  costly = (evaluate.run(ctx, unl.subset(picked, f"{unl.name}_selected"), retr_eval,
                         scope="selected").metrics if picked else {})
  for (goal, lam), chosen in choices.items():
    members = [unl.members[j] for j in chosen]
    labels = dict(goal=goal, lam=lam, selected=1)
    metrics = {k: v[chosen] for k, v in grid.metrics.items()}
    if (goal, lam) == ("privacy", config.regions.lam):
      metrics.update({k: v[[position[j] for j in chosen]] for k, v in costly.items()})
    metrics[("val", "degenerate")] = select.degenerate(
        metrics[("val", "error")], orig_eval.metrics[("val", "error")][unl.origin[chosen]],
        ctx.splits.num_classes, config.eval.degenerate_fraction)
    rows += results.member_rows("selected", unl.name, members, metrics, **labels)
    if lam != config.regions.lam or not len(chosen):
      continue
    if goal == "privacy":   # group scores are privacy measures, and costly: one lambda
      rows += evaluate.group_rows(ctx, "selected", unl.name, grid, retr_eval, chosen, **labels)
    rows += results.member_rows("regions", unl.name, members,
                                regions.run(ctx, refs, unl, retr_eval.models, chosen, goal, lam),
                                **labels)
    if goal == "privacy" and unl.name == config.report.plane_method:
      report.plane_figures(ctx, refs, unl, chosen, lam)
  privacy = choices.get(("privacy", config.regions.lam), [])
  return rows, list(privacy)
