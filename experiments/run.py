"""The width sweep as a library function: `run(config, workdir)`.

Per width bucket (widths that share one padded, vmapped member axis):
  1. originals: every (seed, width) trained on the train split;
  2. retrained references: the same members trained from scratch on the retain set;
  3. every method unlearns every original over its hyperparameter grid (one vmapped program);
  4. every model is evaluated (errors, MIAs, agreement with and gaps to its retrained reference);
     hyperparameters are selected per (width, seed, method, goal, lambda) on validation data;
  5. decision-region change of the selected models near the forget set and elsewhere.
Then `results.csv` (tidy rows), plots and `report.md`. Every stage is checkpointed in the workdir:
a killed run started again with the same command continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import evaluate_stage as ev
from experiments import regions_stage, report, results, setup
from experiments.training_stage import bucket_tag, train_bucket
from experiments.unlearn_stage import check_config as check_unlearn_config, unlearn_bucket
from unlearn_jax.evaluation import epsilon_score, tuning
from unlearn_jax.train import Progress, take_members, variable_structure


def metric_rows(stage: str, method: str, members: list[dict], metrics: dict, **extra) -> list:
  return [results.row(stage=stage, method=method, width=m["width"], seed=m["seed"],
                      hparams=m.get("hparams", {}), split=split, metric=metric,
                      value=float(values[i]), **extra)
          for i, m in enumerate(members) for (split, metric), values in metrics.items()]


def _variables(state) -> dict:
  if isinstance(state, dict):
    return {"params": state["params"], "batch_stats": state["batch_stats"]}
  return {"params": state.params, "batch_stats": state.batch_stats}


def _select(metrics: dict, origin: list[int], num_orig: int, goal: str, lam: float) -> np.ndarray:
  """Member index chosen for each original by validation data only (-1: all diverged)."""
  grid = len(origin) // num_orig
  val = metrics[("val", "error")].reshape(num_orig, grid)
  forget = metrics[("forget", "error")].reshape(num_orig, grid)
  best = tuning.select(goal, lam, val_error=val, forget_error=forget)
  return np.where(best >= 0, np.arange(num_orig) * grid + best, -1)


def _report_diverged(what: str, metrics: dict, members: list[dict]) -> None:
  """Logs members whose outputs are non-finite; tuning and aggregates skip them (NaN)."""
  bad = np.flatnonzero(~np.isfinite(metrics[("val", "error")])
                       | ~np.isfinite(metrics[("forget", "error")]))
  if len(bad):
    logging.warning("%s: members %s diverged (non-finite outputs), e.g. %s; their metrics are "
                    "NaN, tuning never selects them and aggregates skip them.", what,
                    bad.tolist(), members[int(bad[0])])


def _cached(path: str, members: list[dict], compute) -> tuple[dict, np.ndarray | None]:
  """(metrics, forget confidences) from `path` if a finished run wrote them for `members`,
  else computed by `compute() -> (metrics, conf)`."""
  loaded = ev.load_metrics(path)
  if loaded is not None and loaded[1] == json.loads(json.dumps(members)):
    return loaded[0], loaded[2]
  metrics, conf = compute()
  if jax.process_index() == 0:   # every process computes the same values; one writes them
    ev.save_metrics(path, metrics, members, conf)
  return metrics, conf


def _epsilon_row(config, stage, method, width, conf, retrained_conf, **extra) -> list:
  """The NeurIPS 2023 forgetting score over seeds (one row), if there are enough seeds."""
  if conf is None:
    return []
  # Diverged members (non-finite confidences) on either side are left out, as everywhere.
  conf = conf[np.all(np.isfinite(conf), axis=1)]
  retrained_conf = retrained_conf[np.all(np.isfinite(retrained_conf), axis=1)]
  if min(len(conf), len(retrained_conf)) < config.eval.epsilon_min_models:
    return []
  score = epsilon_score.forget_score(conf, retrained_conf)
  return [results.row(stage=stage, method=method, width=width, seed="all", split="forget",
                      metric="epsilon_score", value=score, **extra)]


def _check_config(config) -> None:
  """Settings that would otherwise fail late (after training) or silently give empty tables."""
  check_unlearn_config(config)
  unknown = sorted(set(config.eval.goals) - set(tuning.OBJECTIVES))
  if unknown:
    raise ValueError(f"config.eval.goals has unknown goal(s) {unknown}; allowed: "
                     f"{sorted(tuning.OBJECTIVES)}.")
  if config.regions.lam not in tuple(config.eval.lambdas):
    raise ValueError(f"config.regions.lam={config.regions.lam} must be one of config.eval.lambdas "
                     f"{tuple(config.eval.lambdas)}: regions, epsilon scores and plane figures "
                     "are computed for the points selected at that lambda.")


@dataclasses.dataclass
class _Context:
  """What every stage of one run reads."""
  config: Any
  workdir: str
  splits: Any
  scenario: Any
  data: dict
  sample_x: Any
  probe: regions_stage.RegionProbe
  figures_dir: str
  writer: bool   # process 0 of a multi-process run writes files


@dataclasses.dataclass
class _References:
  """A bucket's originals and retrained references, evaluated and probed once."""
  original: Any
  retrained: Any
  members: list[dict]
  widths_of: np.ndarray
  retrained_metrics: dict
  retrained_preds: dict
  retrained_conf: np.ndarray
  original_labels: dict
  retrained_labels: dict


def _train_references(ctx: _Context, widths, timings: dict, progress, done: int):
  """Trains (or resumes) originals and retrained references; returns (_References, rows)."""
  config, splits, tag = ctx.config, ctx.splits, bucket_tag(widths)
  trained = {}
  for stage, pool, stream in (("original", np.arange(len(splits.y_train)), 0),
                              ("retrained", splits.retain_idx, 1)):
    trained[stage] = train_bucket(config, stage, widths, ctx.data, pool, stream, ctx.workdir,
                                  ctx.sample_x, splits.num_classes)
    timings[f"train {stage} {tag}"] = trained[stage].seconds
    done += 1
    progress.update(done, f"({stage} widths {tag})")
  orig, retr = trained["original"], trained["retrained"]
  members = [dataclasses.asdict(m) | {"hparams": {}} for m in orig.members]
  orig_vars, retr_vars = _variables(orig.state), _variables(retr.state)
  evaluate = lambda variables, **kw: ev.evaluate_members(
      ev.predict_splits(orig.model, *variables.values(), splits, config.eval_batch_size,
                        orig.strategy, ctx.scenario),
      splits, mia_max_train=config.eval.mia_max_train, scenario=ctx.scenario, **kw)
  retr_metrics, retr_preds, retr_conf = evaluate(retr_vars)
  orig_metrics, _, orig_conf = evaluate(orig_vars, retrained_pred=retr_preds)
  ev.add_avg_gap(orig_metrics, retr_metrics)
  _report_diverged(f"original widths {tag}", orig_metrics, members)
  _report_diverged(f"retrained widths {tag}", retr_metrics, members)
  refs = _References(orig, retr, members, np.asarray([m["width"] for m in members]),
                     retr_metrics, retr_preds, retr_conf,
                     ctx.probe.labels(orig.model, orig_vars),
                     ctx.probe.labels(orig.model, retr_vars))
  rows = (metric_rows("original", "original", members, orig_metrics)
          + metric_rows("retrained", "retrain", members, retr_metrics)
          + metric_rows("regions", "retrain", members,
                        ctx.probe.changes(refs.original_labels, refs.retrained_labels)))
  for w in widths:
    rows += _epsilon_row(config, "original", "original", w, orig_conf[refs.widths_of == w],
                         retr_conf[refs.widths_of == w])
  return refs, rows, done


def _unlearn_rows(ctx: _Context, refs: _References, name: str, widths) -> tuple[list, float]:
  """Unlearns with method `name` over its grid, evaluates, selects, probes; returns rows."""
  config, splits, probe, tag = ctx.config, ctx.splits, ctx.probe, bucket_tag(widths)
  unl = unlearn_bucket(config, name, refs.original, ctx.data, splits, ctx.workdir, ctx.sample_x,
                       splits.num_classes)
  unl_vars = _variables(unl.state)
  origin = np.asarray(unl.origin)

  def compute_metrics():
    logits = ev.predict_splits(unl.model, *unl_vars.values(), splits, config.eval_batch_size,
                               unl.strategy, ctx.scenario)
    m, _, conf = ev.evaluate_members(
        logits, splits, mia_max_train=config.eval.mia_max_train, scenario=ctx.scenario,
        retrained_pred={k: v[origin] for k, v in refs.retrained_preds.items()})
    ev.add_avg_gap(m, {k: v[origin] for k, v in refs.retrained_metrics.items()})
    return m, conf

  metrics, unl_conf = _cached(os.path.join(unl.directory, "metrics.json"), unl.members,
                              compute_metrics)
  _report_diverged(f"unlearn {name} widths {tag}", metrics, unl.members)
  rows = metric_rows("unlearned", name, unl.members, metrics)
  for goal in config.eval.goals:
    for lam in config.eval.lambdas:
      chosen = _select(metrics, unl.origin, len(refs.members), goal, lam)
      if not (chosen >= 0).all():
        logging.warning("%s widths %s goal %s lambda %g: every grid point diverged for "
                        "originals %s", name, tag, goal, lam,
                        np.flatnonzero(chosen < 0).tolist())
      chosen = chosen[chosen >= 0]
      chosen_members = [unl.members[j] for j in chosen]
      rows += metric_rows("selected", name, chosen_members,
                          {k: v[chosen] for k, v in metrics.items()}, goal=goal, lam=lam,
                          selected=1)
      if lam != config.regions.lam or not len(chosen):
        continue
      if goal == "privacy":   # the score is a privacy measure, and costly: one lambda
        for w in widths:
          sel = [j for j in chosen if unl.members[j]["width"] == w]
          rows += _epsilon_row(config, "selected", name, w, unl_conf[sel],
                               refs.retrained_conf[refs.widths_of == w], goal=goal, lam=lam,
                               selected=1)

      def compute_regions(chosen=chosen):
        after = probe.labels(unl.model, take_members(unl_vars, chosen))
        before = regions_stage.index_labels(refs.original_labels, origin[chosen])
        changes = probe.changes(before, after)
        vs_retrained = probe.changes(
            regions_stage.index_labels(refs.retrained_labels, origin[chosen]), after)
        changes.update({(s, m + "_vs_retrained"): v for (s, m), v in vs_retrained.items()})
        return changes, None

      regions, _ = _cached(os.path.join(unl.directory, f"regions_{goal}_{lam:g}.json"),
                           chosen_members, compute_regions)
      rows += metric_rows("regions", name, chosen_members, regions, goal=goal, lam=lam,
                          selected=1)
      if ctx.writer and name == config.report.plane_method and goal == "privacy":
        for w in {min(config.widths), max(config.widths)} & set(widths):
          j = next((int(j) for j in chosen if unl.members[j]["width"] == w), None)
          if j is None:   # every original of this width diverged
            continue
          regions_stage.plot_forget_plane(
              probe, unl.model, take_members(_variables(refs.original.state), [origin[j]]),
              take_members(unl_vars, [j]),
              os.path.join(ctx.figures_dir, f"plane_width_{w}.png"), splits.num_classes,
              f"width {w}, {name}, privacy lambda {lam:g}")
  return rows, unl.seconds


def run(config, workdir: str) -> dict:
  """Runs every stage; returns {'rows': result rows, 'wall_s': seconds}."""
  start = time.time()
  _check_config(config)
  os.makedirs(workdir, exist_ok=True)
  setup.configure_jax(config)
  splits, scenario = setup.load_splits(config)
  figures_dir = os.path.join(workdir, "figures")
  os.makedirs(figures_dir, exist_ok=True)
  ctx = _Context(config, workdir, splits, scenario, setup.device_data(splits),
                 jnp.asarray(splits.x_train[:2]),
                 regions_stage.RegionProbe(splits, config.regions, seed=config.dataset.split_seed),
                 figures_dir, jax.process_index() == 0)
  structure = functools.lru_cache(None)(lambda w: variable_structure(
      config.model.name, w, splits.num_classes, ctx.sample_x, **dict(config.model.kwargs)))
  buckets = setup.width_buckets(config.widths, config.bucket_max_ratio, structure)
  method_names = [m for m in config.unlearn.methods if m != "retrain"]
  rows, timings = [], {}
  progress = Progress("sweep", len(buckets) * (2 + len(method_names)), unit="stage", every_s=0)
  done = 0
  for widths in buckets:
    tag = bucket_tag(widths)
    refs, ref_rows, done = _train_references(ctx, widths, timings, progress, done)
    rows += ref_rows
    for name in method_names:
      method_rows, seconds = _unlearn_rows(ctx, refs, name, widths)
      rows += method_rows
      timings[f"unlearn {name} {tag}"] = seconds
      done += 1
      progress.update(done, f"({name} widths {tag})")

  wall = time.time() - start
  if ctx.writer:
    results.write_csv(os.path.join(workdir, "results.csv"), rows)
    info = {"wall_s": wall, "backend": jax.default_backend(), "devices": jax.device_count(),
            "processes": jax.process_count(), "splits": splits.summary(),
            "stage_seconds": timings}
    with open(os.path.join(workdir, "run_info.json"), "w") as f:
      json.dump(info, f, indent=1)
    report.write_report(config, workdir, rows, info)
  logging.info("done in %.1fs; results in %s", wall, os.path.join(workdir, "results.csv"))
  return {"rows": rows, "wall_s": wall}
