"""`report.md` of a width sweep (and its figures), computed from its tidy result rows alone."""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict

import numpy as np

from experiments import plots

STUDY_METHODS = ("scrub", "neggrad_plus", "l1_sparse")
FORGET_USING = ("scrub", "neggrad_plus")


class Table:
  """Values over seeds, keyed by (stage, method, width, goal, lam, split, metric)."""

  def __init__(self, rows):
    self.values = defaultdict(list)
    for r in rows:
      lam = r["lam"] if r["lam"] == "" else float(r["lam"])
      key = (r["stage"], r["method"], float(r["width"]), r["goal"], lam, r["split"], r["metric"])
      self.values[key].append(float(r["value"]))
    self.widths = sorted({k[2] for k in self.values})

  def get(self, stage, method, width, split, metric, goal="", lam="") -> np.ndarray:
    return np.asarray(self.values.get((stage, method, float(width), goal, lam, split, metric), []))

  def stat(self, *args, **kw) -> tuple[float, float]:
    v = self.get(*args, **kw)
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std())) if len(v) else (math.nan, math.nan)

  def methods(self, stage="selected"):
    return sorted({k[1] for k in self.values if k[0] == stage})


def _fmt(ms) -> str:
  return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def findings(t: Table, lambdas) -> list[dict]:
  """The study's four findings, each with measured numbers and whether it holds here."""
  narrow, wide = t.widths[0], t.widths[-1]
  lam_hi = max(lambdas)
  out = []

  def abs_gap(stage, method, w, **kw):
    v = np.abs(t.get(stage, method, w, "forget", "gap_val", **kw))
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std())) if len(v) else (math.nan, math.nan)

  test0 = t.stat("original", "original", wide, "test", "error")
  gap0 = abs_gap("original", "original", wide)
  forget0 = t.stat("original", "original", wide, "forget", "error")
  lines, holds_p, holds_b = [], False, False
  for m in STUDY_METHODS:
    gap = abs_gap("selected", m, wide, goal="privacy", lam=lam_hi)
    test_p = t.stat("selected", m, wide, "test", "error", goal="privacy", lam=lam_hi)
    forget_b = t.stat("selected", m, wide, "forget", "error", goal="bias_removal", lam=lam_hi)
    test_b = t.stat("selected", m, wide, "test", "error", goal="bias_removal", lam=lam_hi)
    holds_p |= gap[0] <= 0.5 * gap0[0] and test_p[0] - test0[0] <= 0.05
    holds_b |= forget_b[0] - forget0[0] >= 0.2 and test_b[0] - test0[0] <= 0.05
    lines.append(f"{m}: privacy |gap| {_fmt(gap)} at test error {_fmt(test_p)}; bias removal "
                 f"forget error {_fmt(forget_b)} at test error {_fmt(test_b)}")
  out.append(dict(
      title="1. Wide models: much privacy / bias removal at a modest test-error cost",
      criterion=(f"at width {wide:g}, lambda {lam_hi:g}, some study method at least halves the "
                 "|forget - val| error gap (privacy) / raises forget error by >= 0.2 (bias "
                 "removal), each at <= 0.05 extra test error"),
      numbers=[f"original: |gap| {_fmt(gap0)}, forget error {_fmt(forget0)}, test error "
               f"{_fmt(test0)}"] + lines,
      holds=bool(holds_p and holds_b),
      detail=f"privacy part holds: {holds_p}; bias-removal part holds: {holds_b}"))

  gap_n, gap_w = abs_gap("original", "original", narrow), gap0
  test_n = t.stat("original", "original", narrow, "test", "error")
  out.append(dict(
      title="2. Underparameterized models are fairly private already but generalise worse",
      criterion=(f"the original width-{narrow:g} model has a smaller |forget - val| gap and a "
                 f"higher test error than the original width-{wide:g} model"),
      numbers=[f"width {narrow:g}: |gap| {_fmt(gap_n)}, test error {_fmt(test_n)}",
               f"width {wide:g}: |gap| {_fmt(gap_w)}, test error {_fmt(test0)}"],
      holds=bool(gap_n[0] < gap_w[0] and test_n[0] > test0[0])))

  rise = {m: t.stat("selected", m, wide, "forget", "error", goal="bias_removal", lam=lam_hi)[0]
          - forget0[0] for m in STUDY_METHODS}
  best_forget = max(rise[m] for m in FORGET_USING)
  out.append(dict(
      title="3. Bias removal on wide models works only with methods that use the forget set",
      criterion=(f"at width {wide:g} (bias removal, lambda {lam_hi:g}) the forget-error rise of "
                 "SCRUB or NegGrad+ exceeds l1-sparse's by >= 0.1"),
      numbers=[f"{m}: forget-error rise {rise[m]:+.3f}" for m in STUDY_METHODS],
      holds=bool(best_forget - rise["l1_sparse"] >= 0.1)))

  lam_r = sorted({k[4] for k in t.values if k[0] == "regions" and k[4] != ""})
  lam_r = lam_r[0] if lam_r else ""
  ball = _smallest_ball(t)
  near, far, nums = [], [], []
  for m in FORGET_USING:
    for metric in ("plane_changed", ball):
      ms = {f: t.stat("regions", m, wide, f, metric, goal="privacy", lam=lam_r)
            for f in ("forget", "retain", "test")}
      nums.append(f"{m}, {metric}: around forget / retain / test examples "
                  + " / ".join(_fmt(ms[f]) for f in ms))
      if metric == ball:
        near.append(ms["forget"][0])
        far.append(ms["retain"][0])
  out.append(dict(
      title="4. On wide models unlearning changes decision regions locally",
      criterion=(f"at width {wide:g} (privacy selection), for SCRUB and NegGrad+, predictions in "
                 f"small random neighbourhoods ({ball}: radius as a fraction of the mean distance "
                 "between training inputs) of the forget examples change at least twice as often "
                 "as around retain examples. Test examples are reported too: at high test error "
                 "many of them sit near a decision boundary, so any update flips some of them"),
      numbers=nums, holds=_all_nonnegative(np.asarray(near) - 2 * np.asarray(far))))
  return out


def _smallest_ball(t: Table) -> str:
  """The metric of the smallest neighbourhood radius the run measured (the most local one)."""
  prefix = "ball_changed_r"
  balls = sorted({k[6] for k in t.values if k[0] == "regions" and k[6].startswith(prefix)
                  and not k[6].endswith("retrained")}, key=lambda m: float(m[len(prefix):]))
  return balls[0] if balls else "ball_changed_r0.05"


def _all_nonnegative(values: np.ndarray) -> bool:
  """True when the finite values exist and are all >= 0 (diverged members leave NaNs)."""
  finite = values[np.isfinite(values)]
  return bool(finite.size and finite.min() >= 0)


def _evaluator_tables(t: Table, evaluators, methods, lam_r, num_seeds: int) -> list[str]:
  """The tables the configured evaluators name, for the metrics this run produced."""
  lines = []
  metrics = {k[6] for k in t.values}
  for table in (tab for e in evaluators for tab in e.tables):
    if table.metric not in metrics:
      continue
    sets = [("original", "original")] + ([("retrained", "retrain")] if table.with_retrained
                                         else [])
    lines += ["", f"## {table.title} ({table.goal}, lambda {lam_r:g}; {num_seeds} seeds)", "",
              "| width | " + " | ".join([s for s, _ in sets] + list(methods)) + " |",
              "|---" * (len(sets) + len(methods) + 1) + "|"]
    for w in t.widths:
      cells = [t.stat(stage, method, w, table.split, table.metric) for stage, method in sets]
      cells += [t.stat("selected", m, w, table.split, table.metric, goal=table.goal, lam=lam_r)
                for m in methods]
      lines.append(f"| {w:g} | " + " | ".join(_fmt(c) for c in cells) + " |")
  return lines


def _diverged_section(diverged: list[dict]) -> list[str]:
  if not diverged:
    return ["", "## Diverged members", "", "None: every member's parameters stayed finite."]
  lines = ["", "## Diverged members", "",
           "Members with non-finite parameters: every metric of theirs is NaN, tuning never "
           "selects them and the tables' means skip them.", "",
           "| stage | widths | members (seed, width, hyperparameters) |", "|---|---|---|"]
  for d in diverged:
    shown = "; ".join(f"{m['seed']}, {m['width']}, {json.dumps(m.get('hparams', {}))}"
                      for m in d["members"][:5])
    more = f" (+{len(d['members']) - 5} more)" if len(d["members"]) > 5 else ""
    lines.append(f"| {d['stage']} | {d['widths']} | {len(d['members'])}: {shown}{more} |")
  return lines


def write_report(config, layout, rows, info: dict, evaluators, diverged: list[dict]) -> None:
  """Figures under layout.figures and report.md, from the rows alone."""
  t = Table(rows)
  fig_dir = layout.figures
  os.makedirs(fig_dir, exist_ok=True)
  lambdas = tuple(config.eval.lambdas)
  plots.errors_vs_width(t, layout.figure("errors_vs_width.png"))
  for goal in config.eval.goals:
    plots.tradeoff(t, goal, lambdas, layout.figure(f"tradeoff_{goal}.png"))
  lam_r = config.regions.lam
  methods = t.methods()
  plots.vs_width(
      t, [("original", lambda w: t.stat("original", "original", w, "forget", "mia_loss")),
          ("retrained", lambda w: t.stat("retrained", "retrain", w, "forget", "mia_loss"))]
      + [(m, lambda w, m=m: t.stat("selected", m, w, "forget", "mia_loss", goal="privacy",
                                   lam=lam_r)) for m in methods],
      "loss-MIA accuracy (0.5 = private)", f"membership inference (privacy, lambda {lam_r:g})",
      layout.figure("mia_vs_width.png"))
  study = [m for m in STUDY_METHODS if m in methods]
  # Colour per method; solid near the forget examples, dashed for the comparison set.
  style = lambda i, f: {"color": f"C{i}", "linestyle": "-" if f == "forget" else "--"}
  plots.vs_width(
      t, [(f"{m} {f}", lambda w, m=m, f=f: t.stat("regions", m, w, f, "plane_changed",
                                                  goal="privacy", lam=lam_r), style(i, f))
          for i, m in enumerate(study) for f in ("forget", "test")],
      "fraction of plane points relabelled",
      f"decision-region change near forget vs test examples (privacy, lambda {lam_r:g})",
      layout.figure("regions_vs_width.png"))
  ball = _smallest_ball(t)
  plots.vs_width(
      t, [(f"{m} {f}", lambda w, m=m, f=f: t.stat("regions", m, w, f, ball, goal="privacy",
                                                  lam=lam_r), style(i, f))
          for i, m in enumerate(study) for f in ("forget", "retain")],
      f"fraction of points relabelled ({ball})",
      f"change in small balls around forget vs retain examples (privacy, lambda {lam_r:g})",
      layout.figure("regions_ball_vs_width.png"))

  lines = ["# Width sweep report", "",
           f"Dataset `{config.dataset.name}`, model `{config.model.name}`, widths "
           f"{list(config.widths)}, seeds {list(config.seeds)}, forget set "
           f"{info['splits']['forget']} examples ({config.dataset.forget_mode}, scenario "
           f"{config.dataset.get('scenario', 'none')}).",
           f"Wall time {info['wall_s']:.0f} s on {info['devices']} {info['backend']} device(s) "
           "(this invocation only: stages restored from the workdir cost no time here).",
           "", "## Findings of the study, checked here", ""]
  for f in findings(t, lambdas):
    lines += [f"### {f['title']}: {'holds' if f['holds'] else 'does not hold'} here", "",
              f"Criterion: {f['criterion']}.", ""] + [f"- {n}" for n in f["numbers"]]
    if f.get("detail"):
      lines.append(f"- {f['detail']}")
    lines.append("")
  lines += ["## Errors per width (mean ± std over seeds)", "",
            "| width | original train | original test | original forget | retrained test | "
            "retrained forget | original loss-MIA |", "|---|---|---|---|---|---|---|"]
  for w in t.widths:
    lines.append(f"| {w:g} | " + " | ".join(_fmt(x) for x in (
        t.stat("original", "original", w, "train", "error"),
        t.stat("original", "original", w, "test", "error"),
        t.stat("original", "original", w, "forget", "error"),
        t.stat("retrained", "retrain", w, "test", "error"),
        t.stat("retrained", "retrain", w, "forget", "error"),
        t.stat("original", "original", w, "forget", "mia_loss"))) + " |")
  lines += ["", f"## Selected unlearning results (lambda {lam_r:g})", "",
            "| width | method | goal | forget error | val error | test error | loss-MIA | "
            "avg gap to retrained |", "|---|---|---|---|---|---|---|---|"]
  for w in t.widths:
    for m in methods:
      for goal in config.eval.goals:
        s = lambda split, metric: _fmt(t.stat("selected", m, w, split, metric, goal=goal,
                                              lam=lam_r))
        lines.append(f"| {w:g} | {m} | {goal} | {s('forget', 'error')} | {s('val', 'error')} | "
                     f"{s('test', 'error')} | {s('forget', 'mia_loss')} | {s('all', 'avg_gap')} |")
  lines += _evaluator_tables(t, evaluators, methods, lam_r, len(config.seeds))
  lines += _diverged_section(diverged)
  lines += ["", "## Figures", ""]
  for name in sorted(os.listdir(fig_dir)):
    if name.endswith(".png"):
      lines.append(f"![{name}](figures/{name})")
  lines += ["", "## Stage times (s)", "", "```",
            json.dumps({k: round(v, 1) for k, v in info["stage_seconds"].items()}, indent=1),
            "```", "", "## Configuration", "", "```json", config.to_json(indent=1), "```"]
  with open(layout.report, "w") as f:
    f.write("\n".join(lines) + "\n")
