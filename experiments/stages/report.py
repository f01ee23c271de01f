"""Stage: figures, `report.md`, `results.csv` and `run_info.json`, rewritten from the rows.

`run_info.json` says whether the run finished: it is marked incomplete when a run starts and
complete only after every other file is written, so a run killed mid-report never leaves a
workdir that looks finished.
"""
from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np

from experiments import plots, report, results
from experiments.stages.regions import ReferenceLabels
from unlearn_jax.evaluation import decision_regions as dr


def _write_info(layout, info: dict) -> None:
  tmp = layout.run_info + ".tmp"
  with open(tmp, "w") as f:
    json.dump(info, f, indent=1)
  os.replace(tmp, layout.run_info)


def mark_started(layout, writer: bool) -> None:
  if writer:
    os.makedirs(layout.workdir, exist_ok=True)
    _write_info(layout, {"complete": False})


def run(ctx, rows: list[dict], timings: dict, wall: float) -> dict:
  """Writes every output (process 0); returns {'rows', 'wall_s'}."""
  if ctx.writer:
    info = {"complete": False, "wall_s": wall, "backend": jax.default_backend(),
            "devices": jax.device_count(), "processes": jax.process_count(),
            "splits": ctx.splits.summary(), "num_classes": ctx.splits.num_classes,
            "data_fingerprint": ctx.fingerprint,
            "stage_seconds": timings, "diverged": ctx.diverged}
    report.write_report(ctx.config, ctx.layout, rows, info, ctx.evaluators, ctx.diverged)
    results.write_csv(ctx.layout.results_csv, rows)
    _write_info(ctx.layout, dict(info, complete=True))
  logging.info("done in %.1fs; results in %s", wall, ctx.layout.results_csv)
  return {"rows": rows, "wall_s": wall}


def plane_figures(ctx, refs: ReferenceLabels, unlearned, chosen, lam: float) -> None:
  """The first forget-anchored plane of the narrowest and widest model, before and after."""
  if not ctx.writer:
    return
  config = ctx.config
  for w in {min(config.widths), max(config.widths)} & set(unlearned.widths):
    j = next((int(j) for j in chosen if unlearned.members[j]["width"] == w), None)
    if j is None:   # every original of this width diverged
      continue
    original = refs.models("original")
    _plot_forget_plane(ctx, unlearned.model, original.take([unlearned.origin[j]]),
                       unlearned.take([j]), ctx.layout.figure(f"plane_width_{w}.png"),
                       f"width {w}, {unlearned.name}, privacy lambda {lam:g}")


def _plot_forget_plane(ctx, model, before_vars, after_vars, path: str, title: str) -> None:
  probe = ctx.probe
  t = probe.triplets["forget"][:1]
  x1, x2, x3 = probe.x[t[:, 0]], probe.x[t[:, 1]], probe.x[t[:, 2]]
  res, margin = probe.cfg.plot_resolution, probe.cfg.margin
  fn = probe.logits_fn(model)
  before = dr.plane_labels(fn, before_vars, x1, x2, x3, res, margin, probe.cfg.batch_size)[0, 0]
  after = dr.plane_labels(fn, after_vars, x1, x2, x3, res, margin, probe.cfg.batch_size)[0, 0]
  _, _, _, anchor_ab = dr.plane_basis(x1[0], x2[0], x3[0])
  a_values, b_values = dr.plane_axes(anchor_ab, res, margin)
  os.makedirs(ctx.layout.figures, exist_ok=True)
  plots.plot_plane(before, after, np.asarray(a_values), np.asarray(b_values),
                   np.asarray(anchor_ab), path, ctx.splits.num_classes,
                   titles=(f"original ({title})", "unlearned"),
                   anchor_names=("forget x1", "forget x2", "forget x3"))
