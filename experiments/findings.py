"""The study's four findings checked on a sweep's rows: numbers with intervals and verdicts.

Two sets of criteria (`config.report.criteria`):
  * 'relative' (default): every threshold is a fraction of what the regime leaves to do, so one
    criterion means the same on an MLP at 37% test error and a CNN at 1%. Privacy is the fraction
    of the way the forget - val error gap moves from the original's to the retrained
    reference's own gap; bias
    removal the fraction of the way from the original's forget error to chance; the test-error
    cost a fraction of the original's test error. Fractions are ratios of means over seeds with
    a bootstrap interval (seeds resampled, both means recomputed), never means of per-seed ratios;
    where the denominator's interval contains 0 there is nothing to close: "not testable here".
  * 'absolute': the thresholds first set at the MNIST-1D MLP's scale (halve the gap, raise forget
    error by >= 0.2, at <= `max_test_cost` extra test error).
Under both, a finding the regime cannot test (no underparameterized width, no model left after
the filters, a method that did not do what the finding describes) is "not testable here", never
"does not hold"; originals that never trained are left out (`never_trained`).
"""
from __future__ import annotations

import math

import numpy as np

from unlearn_jax.evaluation import intervals

STUDY_METHODS = ("scrub", "neggrad_plus", "l1_sparse")
FORGET_USING = ("scrub", "neggrad_plus")
CRITERIA = ("relative", "absolute")

VERDICT_RULE = (
    "Each number is a mean over seeds with its 95% percentile-bootstrap interval (2,000 "
    "resamples of the seeds; n = seeds whose models are finite, whose original trained and, for "
    "selected models, not degenerate). Comparisons are paired by seed (the unlearned model "
    "against its own original); a fraction is a ratio of means over the same seeds, its interval "
    "from resampling them. A condition holds when its whole interval satisfies it, does not hold "
    "when none of it does, and is inconclusive otherwise; it is not testable here when fewer "
    "than 2 seeds are left or a fraction's denominator has an interval containing 0. 'Some "
    "method' takes the best of the testable methods' verdicts, 'and' the worst.")


def seed_order(seed: str):
  return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def _common(per_seed) -> list[str]:
  return sorted(set.intersection(*(set(d) for d in per_seed)), key=seed_order)


class _Interval:
  """Verdicts from an interval (`low`, `high`) that may not be `testable`."""
  testable: bool
  low: float
  high: float

  def at_least(self, threshold: float) -> str:
    if not self.testable:
      return intervals.NOT_TESTABLE
    return intervals.verdict_at_least(self.low, self.high, threshold)

  def at_most(self, threshold: float) -> str:
    if not self.testable:
      return intervals.NOT_TESTABLE
    return intervals.verdict_at_most(self.low, self.high, threshold)


class Paired(_Interval):
  """A statistic per seed (seeds present and finite in every input), its mean and 95% bootstrap
  interval over seeds."""

  def __init__(self, fn, *per_seed: dict):
    values = np.asarray([fn(*(d[s] for d in per_seed)) for s in _common(per_seed)], np.float64)
    self.values = values[np.isfinite(values)]
    self.mean = float(self.values.mean()) if len(self.values) else math.nan
    self.low, self.high = intervals.bootstrap_interval(self.values)

  def __str__(self) -> str:
    return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] (n={len(self.values)})"

  @property
  def testable(self) -> bool:
    return len(self.values) >= 2

  def above_zero(self) -> bool:
    return self.testable and self.low > 0


class Ratio(_Interval):
  """mean(numerator) / mean(denominator) over paired seeds with a 95% bootstrap interval; the
  denominator's own interval says whether there is anything to divide by."""

  def __init__(self, numerator, denominator, *per_seed: dict):
    seeds = _common(per_seed)
    pairs = np.asarray([(numerator(*(d[s] for d in per_seed)),
                         denominator(*(d[s] for d in per_seed))) for s in seeds],
                       np.float64).reshape(-1, 2)
    pairs = pairs[np.all(np.isfinite(pairs), axis=1)]
    self.n = len(pairs)
    self.denominator = Paired(float, {str(i): d for i, d in enumerate(pairs[:, 1])})
    d = self.denominator
    self.testable = self.n >= 2 and (d.low > 0 or d.high < 0)
    self.mean, self.low, self.high = math.nan, math.nan, math.nan
    if self.testable:
      self.mean = float(pairs[:, 0].mean() / pairs[:, 1].mean())
      self.low, self.high = intervals.bootstrap_interval(
          pairs, statistic=lambda r: r[..., 0].mean(axis=1) / r[..., 1].mean(axis=1))

  def __str__(self) -> str:
    if not self.testable:
      return f"not testable (denominator {self.denominator})"
    return (f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] of a denominator "
            f"{self.denominator}")



def never_trained(t, chance_loss: float, fraction: float) -> set[tuple[float, str]]:
  """(width, seed) of the originals whose training did not take: retain-set loss still at least
  `fraction` of ln(num_classes), the loss of the uniform prediction (a freshly initialised
  network starts at or above it). An underparameterized model that trained stays in: the
  default's width-4 MLPs reach 1.46 against the 2.07 bar (10 classes, fraction 0.9)."""
  out = set()
  for w in t.widths:
    for seed, loss in t.per_seed_raw("original", "original", w, "retain", "loss").items():
      if not loss < fraction * chance_loss:   # NaN (diverged) is flagged too
        out.add((w, seed))
  return out


class Criteria:
  """The thresholds in force and how each finding's quantities are formed under them."""

  def __init__(self, report_config, chance_error: float):
    self.kind = report_config.get("criteria", "relative")
    if self.kind not in CRITERIA:
      raise ValueError(f"Unknown report.criteria {self.kind!r}; allowed: {list(CRITERIA)}.")
    self.cfg = report_config
    self.chance = chance_error

  @property
  def relative(self) -> bool:
    return self.kind == "relative"

  def cost(self, test, test0):
    if self.relative:
      return Ratio(lambda a, b: a - b, lambda a, b: b, test, test0)
    return Paired(lambda a, b: a - b, test, test0)

  @property
  def max_cost(self) -> float:
    return self.cfg.max_relative_cost if self.relative else self.cfg.max_test_cost

  def cost_text(self) -> str:
    if self.relative:
      return f"a test-error rise of at most {self.max_cost:g} of the original's test error"
    return f"<= {self.max_cost:g} extra test error"

  def privacy(self, gap, gap0, gap_retrained):
    """(statistic, threshold, text): the gap closed."""
    if self.relative:
      # Signed gaps: a retrained model can sit on the other side of the original (a mislabeled
      # forget set: the original fits the flipped labels, the retrained model misses them).
      return (Ratio(lambda g, g0, gr: g - g0, lambda g, g0, gr: gr - g0,
                    gap, gap0, gap_retrained), self.cfg.gap_closed,
              f"moves the forget - val error gap >= {self.cfg.gap_closed:g} of the way from the "
              "original's to the retrained reference's")
    return (Paired(lambda g, g0: 0.5 * abs(g0) - abs(g), gap, gap0), 0.0,
            "at least halves the |forget - val| error gap")

  def rise(self, forget, forget_base, forget0, threshold_key: str, absolute: float):
    """Forget error above `forget_base`, as a fraction of the original's distance to chance
    (relative) or in error points (absolute)."""
    if self.relative:
      chance = self.chance
      return (Ratio(lambda f, b, f0: f - b, lambda f, b, f0: chance - f0, forget, forget_base,
                    forget0), self.cfg[threshold_key])
    return Paired(lambda f, b: f - b, forget, forget_base), absolute

  def rise_text(self, threshold: float) -> str:
    if self.relative:
      return f"by >= {threshold:g} of the original's distance to chance ({self.chance:.3f})"
    return f"by >= {threshold:g}"


def findings(t, lambdas, criteria: Criteria) -> list[dict]:
  """The study's four findings: numbers with intervals and a verdict decided by the intervals."""
  narrow, wide = t.widths[0], t.widths[-1]
  lam_hi = max(lambdas)
  out = []
  orig = lambda w, split, metric: t.per_seed("original", "original", w, split, metric)
  sel = lambda m, goal, split, metric: t.per_seed("selected", m, wide, split, metric, goal=goal,
                                                  lam=lam_hi)
  gap0, test0, forget0 = (orig(wide, "forget", "gap_val"), orig(wide, "test", "error"),
                          orig(wide, "forget", "error"))
  gap_r = t.per_seed("retrained", "retrain", wide, "forget", "gap_val")
  privacy, bias, lines = [], [], []
  privacy_text = bias_text = ""
  for m in STUDY_METHODS:
    shrink, p_threshold, privacy_text = criteria.privacy(sel(m, "privacy", "forget", "gap_val"),
                                                         gap0, gap_r)
    cost_p = criteria.cost(sel(m, "privacy", "test", "error"), test0)
    rise, b_threshold = criteria.rise(sel(m, "bias_removal", "forget", "error"), forget0,
                                      forget0, "to_chance", 0.2)
    bias_text = f"raises forget error {criteria.rise_text(b_threshold)}"
    cost_b = criteria.cost(sel(m, "bias_removal", "test", "error"), test0)
    privacy.append(intervals.all_of([shrink.at_least(p_threshold),
                                     cost_p.at_most(criteria.max_cost)]))
    bias.append(intervals.all_of([rise.at_least(b_threshold), cost_b.at_most(criteria.max_cost)]))
    lines.append(f"{m}: privacy: gap closed {shrink}, test-error cost {cost_p} -> {privacy[-1]}; "
                 f"bias removal: forget-error rise {rise}, test-error cost {cost_b} -> "
                 f"{bias[-1]}")
  holds_p, holds_b = intervals.any_of(privacy), intervals.any_of(bias)
  out.append(dict(
      title="1. Wide models: much privacy / bias removal at a modest test-error cost",
      criterion=(f"at width {wide:g}, lambda {lam_hi:g}, some study method {privacy_text} "
                 f"(privacy) / {bias_text} (bias removal), each at {criteria.cost_text()}"),
      numbers=[f"original: gap {Paired(float, gap0)}, forget error {Paired(float, forget0)}, "
               f"test error {Paired(float, test0)}; retrained reference: gap "
               f"{Paired(float, gap_r)}"] + lines,
      verdict=intervals.all_of([holds_p, holds_b]),
      detail=f"privacy part: {holds_p}; bias-removal part: {holds_b}"))

  gap_n, test_n = orig(narrow, "forget", "gap_val"), orig(narrow, "test", "error")
  more_private = Paired(lambda gw, gn: abs(gw) - abs(gn), gap0, gap_n)
  worse = Paired(lambda tn, tw: tn - tw, test_n, test0)
  bar = criteria.cfg.underparameterized_train_error
  train_n = Paired(float, orig(narrow, "train", "error"))
  under = train_n.at_least(bar) == intervals.HOLDS
  verdict = (intervals.all_of([more_private.at_least(0.0), worse.at_least(0.0)]) if under
             else intervals.NOT_TESTABLE)
  out.append(dict(
      title="2. Underparameterized models are fairly private already but generalise worse",
      criterion=(f"the original width-{narrow:g} model has a smaller |forget - val| gap and a "
                 f"higher test error than the original width-{wide:g} model of the same seed; "
                 f"testable only where width {narrow:g} is underparameterized (its training "
                 f"error's interval lies above {bar:g})"),
      numbers=[f"width {narrow:g}: train error {train_n} -> "
               f"{'underparameterized' if under else 'not clearly underparameterized'}",
               f"width {narrow:g}: |gap| {Paired(abs, gap_n)}, test error {Paired(float, test_n)}",
               f"width {wide:g}: |gap| {Paired(abs, gap0)}, test error {Paired(float, test0)}",
               f"|gap| difference (wide - narrow) {more_private}; test-error difference "
               f"(narrow - wide) {worse}"],
      verdict=verdict))

  rise = {m: sel(m, "bias_removal", "forget", "error") for m in STUDY_METHODS}
  nums, verdicts, threshold = [], [], 0.1
  for m in FORGET_USING:
    beyond, threshold = criteria.rise(rise[m], rise["l1_sparse"], forget0, "beyond_l1", 0.1)
    cost = criteria.cost(sel(m, "bias_removal", "test", "error"), test0)
    verdicts.append(intervals.all_of([beyond.at_least(threshold),
                                      cost.at_most(criteria.max_cost)]))
    nums.append(f"{m}: forget-error rise beyond l1-sparse's {beyond}, test-error cost {cost} -> "
                f"{verdicts[-1]}")
  out.append(dict(
      title="3. Bias removal on wide models works only with methods that use the forget set",
      criterion=(f"at width {wide:g} (bias removal, lambda {lam_hi:g}) SCRUB or NegGrad+ raises "
                 f"forget error beyond l1-sparse's {criteria.rise_text(threshold)}, at "
                 f"{criteria.cost_text()}"),
      numbers=[f"{m}: forget-error rise {Paired(lambda a, b: a - b, rise[m], forget0)}"
               for m in STUDY_METHODS] + nums,
      verdict=intervals.any_of(verdicts)))

  lam_r = sorted({k[4] for k in t.values if k[0] == "regions" and k[4] != ""})
  lam_r = lam_r[0] if lam_r else ""
  ball = smallest_ball(t)
  nums, verdicts = [], []
  for m in FORGET_USING:
    region = lambda f, metric: t.per_seed("regions", m, wide, f, metric, goal="privacy",
                                          lam=lam_r)
    for metric in ("plane_changed", ball):
      nums.append(f"{m}, {metric}: around forget / retain / test examples "
                  + " / ".join(str(Paired(float, region(f, metric)))
                               for f in ("forget", "retain", "test")))
    near = Paired(float, region("forget", ball))
    local = Paired(lambda n, far: n - 2 * far, region("forget", ball), region("retain", ball))
    # A model that did not move near the forget set says nothing about where it moved.
    verdicts.append(local.at_least(0.0) if near.above_zero() else intervals.NOT_TESTABLE)
    moved = "above 0" if near.above_zero() else "not above 0, so not testable"
    nums.append(f"{m}: change near forget {near} ({moved}); minus twice the change near retain "
                f"{local} -> {verdicts[-1]}")
  out.append(dict(
      title="4. On wide models unlearning changes decision regions locally",
      criterion=(f"at width {wide:g} (privacy selection), for SCRUB and NegGrad+, predictions in "
                 f"small random neighbourhoods ({ball}: radius as a fraction of the mean distance "
                 "between training inputs) of the forget examples change (interval above 0) and "
                 "at least twice as often as around retain examples. Test examples are reported "
                 "too: at high test error many of them sit near a decision boundary, so any "
                 "update flips some of them"),
      numbers=nums, verdict=intervals.all_of(verdicts)))
  return out


def smallest_ball(t) -> str:
  """The metric of the smallest neighbourhood radius the run measured (the most local one)."""
  prefix = "ball_changed_r"
  balls = sorted({k[6] for k in t.values if k[0] == "regions" and k[6].startswith(prefix)
                  and not k[6].endswith("retrained")}, key=lambda m: float(m[len(prefix):]))
  return balls[0] if balls else "ball_changed_r0.05"
