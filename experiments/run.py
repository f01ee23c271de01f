"""The width sweep as a library function: `run(config, workdir)`.

For every width bucket (widths that share one padded, vmapped member axis): train the originals
and the retrained references, evaluate both; then for every method: unlearn every original over
the method's grid, evaluate, select hyperparameters per (goal, lambda) on validation data, and at
`config.regions.lam` score the selected models as a group and probe their decision regions.
Finally the report stage writes `results.csv`, figures and `report.md`. Each stage keeps its own
cache in the workdir (see `experiments.stages`): a killed run continues where it stopped.
"""
from __future__ import annotations

import functools
import time

import jax

from experiments import config_checks, context, results, setup, workdir_lock
from experiments.layout import Layout, bucket_tag
from experiments.stages import evaluate, regions, report, select, train, unlearn
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
    for widths in buckets:
      rows += _bucket(ctx, widths, methods, timings, progress)
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


def _bucket(ctx, widths, methods, timings, progress) -> list[dict]:
  """Every stage of one width bucket; returns its result rows."""
  tag = bucket_tag(widths)
  original, retrained = (train.run(ctx, name, widths) for name in ("original", "retrained"))
  for trained in (original, retrained):
    timings[f"train {trained.models.name} {tag}"] = trained.models.seconds
    progress.advance(f"({trained.models.name} widths {tag})")
  orig, retr = original.models, retrained.models
  retr_eval = evaluate.run(ctx, retr)
  orig_eval = evaluate.run(ctx, orig, retr_eval)
  refs = regions.ReferenceLabels(ctx.probe, orig, retr)
  rows = (results.member_rows("original", "original", orig.members, orig_eval.metrics)
          + results.member_rows("retrained", "retrain", retr.members, retr_eval.metrics)
          + results.member_rows("regions", "retrain", retr.members,
                                regions.retrain_vs_original(ctx, refs, orig, retr))
          + evaluate.group_rows(ctx, "original", "original", orig_eval, retr_eval))
  for name in methods:
    unlearned = unlearn.run(ctx, name, original)
    rows += _method_rows(ctx, evaluate.run(ctx, unlearned, retr_eval), retr_eval, refs)
    timings[f"unlearn {name} {tag}"] = unlearned.seconds
    progress.advance(f"({name} widths {tag})")
  return rows


def _method_rows(ctx, evaluated, retr_eval, refs) -> list[dict]:
  """Rows of one method: every grid point, then the selected points per (goal, lambda)."""
  config, unl = ctx.config, evaluated.models
  rows = results.member_rows("unlearned", unl.name, unl.members, evaluated.metrics)
  for goal in config.eval.goals:
    for lam in config.eval.lambdas:
      chosen = select.run(evaluated.metrics, unl.origin, len(retr_eval.models.members), goal,
                          lam, f"{unl.name} widths {bucket_tag(unl.widths)}")
      members = [unl.members[j] for j in chosen]
      labels = dict(goal=goal, lam=lam, selected=1)
      rows += results.member_rows("selected", unl.name, members,
                                  {k: v[chosen] for k, v in evaluated.metrics.items()}, **labels)
      if lam != config.regions.lam or not len(chosen):
        continue
      if goal == "privacy":   # group scores are privacy measures, and costly: one lambda
        rows += evaluate.group_rows(ctx, "selected", unl.name, evaluated, retr_eval, chosen,
                                    **labels)
      rows += results.member_rows("regions", unl.name, members,
                                  regions.run(ctx, refs, unl, retr_eval.models, chosen, goal,
                                              lam), **labels)
      if goal == "privacy" and unl.name == config.report.plane_method:
        report.plane_figures(ctx, refs, unl, chosen, lam)
  return rows
