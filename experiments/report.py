"""`report.md` of a width sweep (and its figures), computed from its tidy result rows alone."""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict

import numpy as np

from experiments import plots
from experiments.findings import STUDY_METHODS, Criteria, Paired, findings, never_trained
from experiments.findings import VERDICT_RULE, seed_order, smallest_ball
from experiments.stages import lira as lira_stage
from unlearn_jax.evaluation import intervals, tuning



class Table:
  """Values per seed, keyed by (stage, method, width, goal, lam, split, metric)."""

  def __init__(self, rows):
    self.excluded = set()   # (width, seed) left out of per_seed (originals that never trained)
    self.values = defaultdict(list)
    self.seeds = defaultdict(list)
    for r in rows:
      lam = r["lam"] if r["lam"] == "" else float(r["lam"])
      key = (r["stage"], r["method"], float(r["width"]), r["goal"], lam, r["split"], r["metric"])
      self.values[key].append(float(r["value"]))
      self.seeds[key].append(str(r["seed"]))
    self.widths = sorted({k[2] for k in self.values})

  def get(self, stage, method, width, split, metric, goal="", lam="") -> np.ndarray:
    return np.asarray(self.values.get((stage, method, float(width), goal, lam, split, metric), []))

  def per_seed(self, stage, method, width, split, metric, goal="", lam="") -> dict:
    """{seed: value}; selected models flagged ('val', 'degenerate') and every model of an
    excluded (width, seed) are left out."""
    out = self.per_seed_raw(stage, method, width, split, metric, goal, lam)
    out = {s: v for s, v in out.items() if (float(width), s) not in self.excluded}
    if stage == "selected":
      flags = self.per_seed_raw(stage, method, width, "val", "degenerate", goal, lam)
      out = {s: v for s, v in out.items() if flags.get(s, 0.0) != 1.0}
    return out

  def per_seed_raw(self, stage, method, width, split, metric, goal="", lam="") -> dict:
    """{seed: value}, every seed."""
    key = (stage, method, float(width), goal, lam, split, metric)
    return dict(zip(self.seeds.get(key, []), self.values.get(key, [])))

  def stat(self, *args, **kw) -> tuple[float, float]:
    v = self.get(*args, **kw)
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std())) if len(v) else (math.nan, math.nan)

  def methods(self, stage="selected"):
    return sorted({k[1] for k in self.values if k[0] == stage})


def _fmt(ms) -> str:
  return f"{ms[0]:.3f} ± {ms[1]:.3f}"


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


def _forgetting_score_section(t: Table) -> list[str]:
  """The challenge-protocol forgetting score per width, next to its ceiling and floor."""
  one = lambda method, w, metric: t.stat("forgetting_score", method, w, "forget", metric)[0]
  methods = t.methods("forgetting_score")
  if not methods:
    return []
  calibration = ["retrain (ceiling)", "original (floor)"]
  methods = [m for m in calibration if m in methods] + [m for m in methods if m not in calibration]
  lines = ["", "## Forgetting score, challenge protocol (NeurIPS 2023)", "",
           "Per width: one original unlearned K times (runs differing only in their randomness) "
           "against K models retrained without the forget set; ceiling = K other retrained "
           "models (the best score at this K), floor = K originals of other seeds (no "
           "unlearning). Score [95% bootstrap interval over forget examples]; 1 = "
           "indistinguishable from retraining. A method is as private as exact retraining at "
           "this K when its interval overlaps the ceiling's. The floor is not a lower bound: the "
           "score separates groups by their spread as well as their centre, so K runs from one "
           "original whose spread differs from retraining's can score under K originals that "
           "never unlearned.", "",
           "| width | K | " + " | ".join(methods) + " |", "|---" * (len(methods) + 2) + "|"]
  for w in t.widths:
    k = one(methods[0], w, "models_per_side")
    if not np.isfinite(k):
      continue
    cells = [f"{one(m, w, 'epsilon_score'):.3f} [{one(m, w, 'epsilon_score_low'):.3f}, "
             f"{one(m, w, 'epsilon_score_high'):.3f}]" for m in methods]
    lines.append(f"| {w:g} | {k:.0f} | " + " | ".join(cells) + " |")
  return lines


def _interval(t: Table, method, w, metric) -> str:
  one = lambda suffix: t.stat("lira", method, w, "forget", metric + suffix)[0]
  return f"{one(''):.3f} [{one('_low'):.3f}, {one('_high'):.3f}]"


def _headline_fpr(config) -> float:
  """The attack's FPR closest to 1%: the figure's and the finding's operating point."""
  return min(config.lira.fprs, key=lambda f: abs(f - 0.01))


def _lira_section(t: Table, config, lam_r) -> list[str]:
  """The per-example attack per width and method, its calibration rows, the population attack
  on the same models, and finding 2 under the stronger attack."""
  methods = t.methods("lira")
  if not methods:
    return []
  fixed = [m for m in (lira_stage.ORIGINAL, lira_stage.CHANCE) if m in methods]
  methods = fixed + [m for m in methods if m not in fixed]
  fpr = _headline_fpr(config)
  low_fpr = min(config.lira.fprs)
  one = lambda m, w, metric: t.stat("lira", m, w, "forget", metric)[0]
  lines = ["", "## Per-example membership inference with shadow models (LiRA / U-LiRA)", "",
           f"Per width {one(methods[0], t.widths[0], 'shadow_models'):.0f} shadow models on the "
           "member axis: originals trained on the train split, each unlearned with the method "
           "(at the hyperparameters selected for privacy) forgetting its own random half of "
           "2|F| candidates, and retrained without that half. Per forget example a Gaussian is "
           "fitted to the logit-scaled true-class confidence of the shadows that forgot it "
           "(U-LiRA; for the original row: every shadow original, LiRA) and of those retrained "
           "without it. The sweep's own models are scored on the forget set: members are each "
           "method's models selected for privacy (or the originals), non-members the retrained "
           "references; the calibration row scores the retrained references of half the seeds "
           "against the other half, where there is nothing to find. 'Online' is the likelihood "
           "ratio, 'offline' the one-sided test against the retrained Gaussian alone. Values "
           "with 95% two-way bootstrap intervals (target models and forget examples resampled). "
           "A method's models are detected when the AUC interval lies above 0.5.", ""]
  for attack, metric, title in (("online", f"tpr@{fpr:g}", f"TPR at {fpr:g} FPR"),
                                ("online", f"tpr@{low_fpr:g}", f"TPR at {low_fpr:g} FPR"),
                                ("online", "auc", "AUC"), ("offline", "auc", "AUC"),
                                ("offline", f"tpr@{fpr:g}", f"TPR at {fpr:g} FPR")):
    if attack == "online" and metric == f"tpr@{low_fpr:g}" and low_fpr == fpr:
      continue
    lines += [f"### {attack.capitalize()} attack: {title}", "",
              "| width | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for w in t.widths:
      if not np.isfinite(one(methods[0], w, f"{attack}_{metric}")):
        continue
      lines.append(f"| {w:g} | " + " | ".join(_interval(t, m, w, f"{attack}_{metric}")
                                              for m in methods) + " |")
    lines.append("")
  lines += ["### Next to the population attacks (privacy selections)", "",
            "Per-example: online AUC interval above 0.5. Population: the loss attack's accuracy "
            "on the selected models exceeds the retrained references' (paired by seed, interval "
            "above 0).", "",
            "| width | method | U-LiRA AUC | U-LiRA detects | loss-MIA accuracy (selected - "
            "retrained) | loss attack detects | SVC MIA-efficacy |", "|---|---|---|---|---|---|---|"]
  for w in t.widths:
    for m in methods[len(fixed):]:
      if not np.isfinite(one(m, w, "online_auc")):
        continue
      detects = intervals.verdict_at_least(one(m, w, "online_auc_low") - 0.5,
                                           one(m, w, "online_auc_high") - 0.5, 1e-12)
      sel = t.per_seed("selected", m, w, "forget", "mia_loss", goal="privacy", lam=lam_r)
      gap = Paired(lambda a, b: a - b, sel, t.per_seed("retrained", "retrain", w, "forget",
                                                       "mia_loss"))
      efficacy = t.stat("selected", m, w, "forget", "mia_efficacy", goal="privacy", lam=lam_r)
      lines.append(f"| {w:g} | {m} | {_interval(t, m, w, 'online_auc')} | "
                   f"{_detects(detects)} | {gap} | {_detects(gap.at_least(1e-12))} | "
                   f"{_fmt(efficacy)} |")
  narrow, wide = t.widths[0], t.widths[-1]
  tpr = lambda w, suffix="": one(lira_stage.ORIGINAL, w, f"online_tpr@{fpr:g}{suffix}")
  verdict = (intervals.HOLDS if tpr(narrow, "_high") < tpr(wide, "_low") else intervals.FAILS
             if tpr(narrow, "_low") > tpr(wide, "_high") else intervals.INCONCLUSIVE)
  lines += ["", f"Finding 2 under the per-example attack: the originals' TPR at {fpr:g} FPR is "
            f"{_interval(t, lira_stage.ORIGINAL, narrow, f'online_tpr@{fpr:g}')} at width "
            f"{narrow:g} against {_interval(t, lira_stage.ORIGINAL, wide, f'online_tpr@{fpr:g}')} "
            f"at width {wide:g} (retrain vs retrain: "
            f"{_interval(t, lira_stage.CHANCE, narrow, f'online_tpr@{fpr:g}')} and "
            f"{_interval(t, lira_stage.CHANCE, wide, f'online_tpr@{fpr:g}')}): narrow originals "
            f"less exposed than wide ones (disjoint intervals): {verdict}."]
  return lines


def _detects(verdict: str) -> str:
  return {intervals.HOLDS: "yes", intervals.FAILS: "no"}.get(verdict, "inconclusive")


def _chance_section(t: Table, config, chance: float) -> list[str]:
  """When the objectives at the configured lambdas prefer a chance-level model to the original,
  and how many selected models were flagged degenerate (left out of the verdicts)."""
  wide = t.widths[-1]
  val0 = t.stat("original", "original", wide, "val", "error")[0]
  forget0 = t.stat("original", "original", wide, "forget", "error")[0]
  retain0 = t.stat("original", "original", wide, "retain", "error")[0]
  # Retrain matching compares with the retrained references' mean errors.
  reference = {s: t.stat("retrained", "retrain", wide, s, "error")[0]
               for s in tuning.REFERENCE_SPLITS}
  lines = ["", "## Degenerate selections and chance-level models", "",
           f"A selected model is flagged degenerate when its validation error lies more than "
           f"{config.eval.degenerate_fraction:g} of the way from its original's validation error "
           f"to chance ({chance:.3f}); flagged models are left out of the findings' verdicts. "
           f"Objective values compare a chance-level model (validation = forget error = "
           f"{chance:.3f}) with the width-{wide:g} original (validation {val0:.3f}, forget "
           f"{forget0:.3f}); lower is preferred.", "",
           "| goal | lambda | objective at chance | objective of the original | prefers chance | "
           "degenerate selections |", "|---|---|---|---|---|---|"]
  for goal in config.eval.goals:
    for lam in config.eval.lambdas:
      at_chance = float(tuning.objective_values(goal, lam, val_error=chance, forget_error=chance,
                                                retain_error=chance, reference=reference))
      at_orig = float(tuning.objective_values(goal, lam, val_error=val0, forget_error=forget0,
                                              retain_error=retain0, reference=reference))
      flags = [v for k, vs in t.values.items() for v in vs if k[0] == "selected"
               and k[3] == goal and k[4] == lam and k[6] == "degenerate"]
      lines.append(f"| {goal} | {lam:g} | {at_chance:.3f} | {at_orig:.3f} | "
                   f"{'yes' if at_chance < at_orig else 'no'} | "
                   f"{int(np.nansum(flags))} of {len(flags)} |")
  return lines


def _rise(t: Table, method: str, width, split: str, goal: str, lam: float) -> Paired:
  """The selected model's error on `split` minus its own original's, paired by seed."""
  return Paired(lambda a, b: a - b,
                t.per_seed("selected", method, width, split, "error", goal=goal, lam=lam),
                t.per_seed("original", "original", width, split, "error"))


def _interval_table(t: Table, config, methods, lam: float) -> list[str]:
  """Every method's selections at the narrowest and widest width with 95% bootstrap intervals
  over seeds, and their changes from the seed's own original (paired)."""
  lines = ["", f"## Every method at the narrowest and widest width, with intervals (lambda "
           f"{lam:g})", "",
           "Mean [95% bootstrap interval over seeds] (n seeds: finite, trained, not degenerate); "
           "rises are paired with the seed's own original.", "",
           "| width | method | goal | forget error | test error | forget-error rise | "
           "test-error rise |", "|---|---|---|---|---|---|---|"]
  for w in sorted({t.widths[0], t.widths[-1]}):
    for m in methods:
      for goal in config.eval.goals:
        cells = [Paired(lambda v: v, t.per_seed("selected", m, w, split, "error", goal=goal,
                                                lam=lam)) for split in ("forget", "test")]
        cells += [_rise(t, m, w, split, goal, lam) for split in ("forget", "test")]
        lines.append(f"| {w:g} | {m} | {goal} | " + " | ".join(map(str, cells)) + " |")
  if "minnorm_og" in methods and "privacy" in config.eval.goals:
    lines += ["", _minnorm_sentence(t, methods, lam)]
  return lines


def _minnorm_sentence(t: Table, methods, lam: float) -> str:
  """Whether MinNorm-OG, built for models that interpolate their retain set, moves differently
  across widths than the study's gradient methods (privacy selections, paired rises)."""
  gradient = [m for m in STUDY_METHODS if m in methods]
  parts = []
  for w in sorted({t.widths[0], t.widths[-1]}):
    rise = {m: [_rise(t, m, w, split, "privacy", lam) for split in ("forget", "test")]
            for m in ["minnorm_og"] + gradient}
    others = ", ".join(f"{m} {r[0].mean:.3f} / {r[1].mean:.3f}" for m, r in rise.items()
                       if m != "minnorm_og") or "no study method (not run)"
    parts.append(f"width {w:g}: MinNorm-OG {rise['minnorm_og'][0]} / {rise['minnorm_og'][1]}"
                 f" against {others}")
  return ("MinNorm-OG across widths (privacy selections; forget-error rise / test-error rise "
          "over the original, paired by seed): " + "; ".join(parts) + ".")


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
  if t.methods("lira"):
    plots.lira_vs_width(t, lam_r, layout.figure("lira_vs_width.png"), _headline_fpr(config))
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
  ball = smallest_ball(t)
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
  chance = 1.0 - 1.0 / info["num_classes"]
  criteria = Criteria(config.report, chance)
  fraction = config.report.never_trained_loss
  t.excluded = never_trained(t, math.log(info["num_classes"]), fraction)
  flagged = ", ".join(f"width {w:g} seed {s}" for w, s in sorted(
      t.excluded, key=lambda ws: (ws[0], seed_order(ws[1])))) or "none"
  lines += [VERDICT_RULE, "",
            f"Criteria: {criteria.kind} (`config.report.criteria`; 'relative' states every "
            "threshold as a fraction of what the regime leaves to do, 'absolute' in error "
            "points at the MNIST-1D MLP's scale).",
            f"Originals that never trained (retain loss still >= {fraction:g} of ln "
            f"{info['num_classes']} = {math.log(info['num_classes']):.3f}, the uniform "
            f"prediction's loss), left out of every verdict with their unlearned models: "
            f"{flagged}.", ""]
  for f in findings(t, lambdas, criteria):
    lines += [f"### {f['title']}: {f['verdict']} here", "",
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
            "Mean ± std over seeds; 'degenerate' counts the seeds whose selected model is near "
            "chance (see below).", "",
            "| width | method | goal | forget error | val error | test error | loss-MIA | "
            "avg gap to retrained | degenerate |", "|---|---|---|---|---|---|---|---|---|"]
  for w in t.widths:
    for m in methods:
      for goal in config.eval.goals:
        s = lambda split, metric: _fmt(t.stat("selected", m, w, split, metric, goal=goal,
                                              lam=lam_r))
        flags = t.get("selected", m, w, "val", "degenerate", goal=goal, lam=lam_r)
        lines.append(f"| {w:g} | {m} | {goal} | {s('forget', 'error')} | {s('val', 'error')} | "
                     f"{s('test', 'error')} | {s('forget', 'mia_loss')} | {s('all', 'avg_gap')} | "
                     f"{int(np.nansum(flags))}/{len(flags)} |")
  lines += _interval_table(t, config, methods, lam_r)
  lines += _evaluator_tables(t, evaluators, methods, lam_r, len(config.seeds))
  lines += _forgetting_score_section(t)
  lines += _lira_section(t, config, lam_r)
  lines += _chance_section(t, config, chance)
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


def rewrite(config, workdir: str) -> None:
  """Rewrites report.md and the row figures of a finished workdir from its results.csv and
  run_info.json (after a change of criteria or report code; no stage runs)."""
  from experiments import evaluators as evaluators_lib, results   # pylint: disable=g-import-not-at-top
  from experiments.layout import Layout   # pylint: disable=g-import-not-at-top
  layout = Layout(workdir)
  with open(layout.run_info) as f:
    info = json.load(f)
  if not info.get("complete"):
    raise ValueError(f"{workdir} holds no finished run (run_info.json is not complete); run the "
                     "sweep first.")
  write_report(config, layout, results.read_csv(layout.results_csv), info,
               evaluators_lib.from_config(config), info.get("diverged", []))
