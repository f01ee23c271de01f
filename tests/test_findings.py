"""The findings' criteria on hand-made rows: holds, does not hold, inconclusive, not testable;
vacuous verdicts and originals that never trained."""
import math

import ml_collections
import numpy as np
import pytest

from configs import common
from experiments import findings
from experiments.report import Table
from unlearn_jax.evaluation import intervals as iv

SEEDS = [str(s) for s in range(8)]
NARROW, WIDE, LAM = 4.0, 64.0, 0.6
CHANCE = 0.9


def _report_config(**overrides):
  cfg = ml_collections.ConfigDict(common.base_config().report.to_dict())
  cfg.update(overrides)
  return cfg


def _rows(values: dict) -> list[dict]:
  """values: (stage, method, width, goal, lam, split, metric) -> one value per seed (a number
  is repeated with a small per-seed jitter, so intervals have width)."""
  rows = []
  for (stage, method, width, goal, lam, split, metric), v in values.items():
    per_seed = v if isinstance(v, (list, tuple)) else [v + 0.002 * (i % 3 - 1)
                                                        for i in range(len(SEEDS))]
    for seed, value in zip(SEEDS, per_seed):
      rows.append(dict(stage=stage, method=method, width=width, seed=seed, goal=goal, lam=lam,
                       split=split, metric=metric, value=value))
  return rows


def _regime(test0=0.02, gap0=0.10, gap_r=0.02, forget_rise=0.5, cost=0.002, narrow_train=0.3,
            near=0.2, far=0.01, degenerate=0.0):
  """A sweep's rows: every study method moves alike; the arguments set the regime."""
  v = {}
  for w, train_err in ((NARROW, narrow_train), (WIDE, 0.0)):
    v[("original", "original", w, "", "", "train", "error")] = train_err
    v[("original", "original", w, "", "", "retain", "loss")] = 0.5
    v[("original", "original", w, "", "", "test", "error")] = test0 + (0.2 if w == NARROW else 0)
    v[("original", "original", w, "", "", "forget", "error")] = 0.0
    v[("original", "original", w, "", "", "forget", "gap_val")] = gap0 if w == WIDE else 0.01
  v[("retrained", "retrain", WIDE, "", "", "forget", "gap_val")] = gap_r
  for m in findings.STUDY_METHODS:
    rise = forget_rise * (0.5 if m == "l1_sparse" else 1.0)
    for goal in ("privacy", "bias_removal"):
      sel = lambda split, metric: ("selected", m, WIDE, goal, LAM, split, metric)
      v[sel("forget", "gap_val")] = gap_r
      v[sel("test", "error")] = test0 + cost
      v[sel("forget", "error")] = rise
      v[sel("val", "degenerate")] = [degenerate] * len(SEEDS)
  for m in findings.FORGET_USING:
    for f, change in (("forget", near), ("retain", far), ("test", far)):
      v[("regions", m, WIDE, "privacy", 0.4, f, "ball_changed_r0.05")] = change
      v[("regions", m, WIDE, "privacy", 0.4, f, "plane_changed")] = change
  return Table(_rows(v))


def _verdicts(t, **overrides):
  criteria = findings.Criteria(_report_config(**overrides), CHANCE)
  return [f["verdict"] for f in findings.findings(t, (0.2, LAM), criteria)]


def test_ratio_of_means_verdicts():
  rng = np.random.default_rng(0)
  den = {s: 1.0 + 0.01 * rng.normal() for s in SEEDS}
  num = {s: 0.7 + 0.01 * rng.normal() for s in SEEDS}
  ratio = findings.Ratio(lambda a, b: a, lambda a, b: b, num, den)
  assert abs(ratio.mean - np.mean(list(num.values())) / np.mean(list(den.values()))) < 1e-12
  assert ratio.low < ratio.mean < ratio.high
  assert ratio.at_least(0.5) == iv.HOLDS
  assert ratio.at_least(0.9) == iv.FAILS
  spread = {s: 0.7 + 0.5 * rng.normal() for s in SEEDS}
  assert findings.Ratio(lambda a, b: a, lambda a, b: b, spread, den).at_least(0.7) == \
      iv.INCONCLUSIVE
  nothing_to_close = {s: 0.01 * (-1) ** i for i, s in enumerate(SEEDS)}
  empty = findings.Ratio(lambda a, b: a, lambda a, b: b, num, nothing_to_close)
  assert not empty.testable and empty.at_least(0.5) == iv.NOT_TESTABLE
  assert "not testable" in str(empty)
  # A ratio of means, not a mean of per-seed ratios: one tiny denominator does not dominate.
  num2, den2 = {"0": 1.0, "1": 1.0}, {"0": 0.01, "1": 1.99}
  assert findings.Ratio(lambda a, b: a, lambda a, b: b, num2, den2).mean == pytest.approx(1.0)


def test_combining_verdicts_keeps_not_testable_apart():
  assert iv.all_of([iv.HOLDS, iv.NOT_TESTABLE]) == iv.NOT_TESTABLE
  assert iv.all_of([iv.FAILS, iv.NOT_TESTABLE]) == iv.FAILS
  assert iv.all_of([]) == iv.NOT_TESTABLE
  assert iv.any_of([iv.NOT_TESTABLE, iv.FAILS]) == iv.FAILS
  assert iv.any_of([iv.NOT_TESTABLE, iv.INCONCLUSIVE, iv.FAILS]) == iv.INCONCLUSIVE
  assert iv.any_of([iv.NOT_TESTABLE, iv.NOT_TESTABLE]) == iv.NOT_TESTABLE
  assert iv.any_of([iv.FAILS, iv.HOLDS]) == iv.HOLDS


def test_relative_criteria_on_a_low_error_regime():
  """A CNN-like regime (test error 0.02, gap 0.10): the absolute bounds cannot see a closed gap
  of 0.08 at +0.002 test error as anything but small, the relative ones can."""
  t = _regime()
  assert _verdicts(t) == [iv.HOLDS, iv.HOLDS, iv.HOLDS, iv.HOLDS]
  # A cost of 0.01 is half the original's 0.02 test error: too much relative to the regime,
  # within the absolute 0.05 bound.
  costly = _regime(cost=0.01)
  assert _verdicts(costly)[0] == iv.FAILS
  assert _verdicts(costly, criteria="absolute")[0] == iv.HOLDS


def test_relative_criteria_does_not_hold_and_inconclusive():
  little = _regime(gap_r=0.02)
  # The methods close only a fifth of the way: forget gap 0.084 of 0.10 toward 0.02.
  for key in list(little.values):
    if key[0] == "selected" and key[6] == "gap_val":
      little.values[key] = [0.084] * len(SEEDS)
  assert findings.findings(little, (LAM,), findings.Criteria(_report_config(), CHANCE))[0][
      "detail"].startswith("privacy part: does not hold")
  noisy = _regime()
  for key in list(noisy.values):
    if key[0] == "selected" and key[1] == "scrub" and key[6] == "error" and key[5] == "forget":
      noisy.values[key] = list(np.random.default_rng(1).uniform(0.0, 0.9, len(SEEDS)))
  # SCRUB's rise beyond l1-sparse straddles 0.1 of the distance to chance; NegGrad+'s holds.
  third = findings.findings(noisy, (LAM,), findings.Criteria(_report_config(), CHANCE))[2]
  assert "scrub" in third["numbers"][3] and "inconclusive" in third["numbers"][3]


def test_nothing_to_close_is_not_testable():
  # The retrained reference's gap equals the original's: no gap to close.
  t = _regime(gap0=0.02, gap_r=0.02)
  f1 = findings.findings(t, (LAM,), findings.Criteria(_report_config(), CHANCE))[0]
  assert f1["detail"].startswith(f"privacy part: {iv.NOT_TESTABLE}")
  assert f1["verdict"] == iv.NOT_TESTABLE


def test_finding_2_needs_an_underparameterized_width():
  assert _verdicts(_regime(narrow_train=0.0))[1] == iv.NOT_TESTABLE
  assert _verdicts(_regime(narrow_train=0.0), criteria="absolute")[1] == iv.NOT_TESTABLE
  assert _verdicts(_regime(narrow_train=0.3))[1] == iv.HOLDS


def test_a_model_that_did_not_move_does_not_support_finding_4():
  """0 >= 2 x 0 is not 'holds': nothing changed near the forget set."""
  assert _verdicts(_regime(near=0.0, far=0.0))[3] == iv.NOT_TESTABLE
  assert _verdicts(_regime(near=0.0, far=0.0), criteria="absolute")[3] == iv.NOT_TESTABLE
  # A change whose interval reaches 0 (one seed of 8 moved: 0.010 [0.000, 0.030]) neither.
  t = _regime()
  for f in ("forget", "retain"):
    key = ("regions", "scrub", WIDE, "privacy", 0.4, f, "ball_changed_r0.05")
    t.values[key] = [0.0] * 7 + [0.08] if f == "forget" else [0.0] * 8
  assert _verdicts(t)[3] == iv.NOT_TESTABLE
  assert _verdicts(_regime(near=0.05, far=0.04))[3] == iv.FAILS


def test_no_selection_left_after_the_degenerate_filter_is_not_testable():
  verdicts = _verdicts(_regime(degenerate=1.0))
  assert verdicts[0] == verdicts[2] == iv.NOT_TESTABLE


def test_originals_that_never_trained_are_flagged_and_trained_narrow_ones_kept():
  ln10 = math.log(10)
  values = {("original", "original", 4.0, "", "", "retain", "loss"):
            [1.457, 2.29, 2.31, 1.40, float("nan"), 1.5, 1.6, 1.7],
            ("original", "original", 4.0, "", "", "train", "error"):
            [0.56, 0.89, 0.90, 0.55, float("nan"), 0.56, 0.57, 0.58]}
  t = Table(_rows(values))
  assert findings.never_trained(t, ln10, 0.9) == {(4.0, "1"), (4.0, "2"), (4.0, "4")}
  t.excluded = findings.never_trained(t, ln10, 0.9)
  kept = t.per_seed("original", "original", 4.0, "train", "error")
  assert sorted(kept) == ["0", "3", "5", "6", "7"]
  assert max(kept.values()) < 0.6   # the underparameterized originals that trained stay in


def test_report_only_rewrites_the_findings_from_the_rows(reference, tmp_path):
  """A finished workdir's report is rewritten under other criteria; its rows stay untouched."""
  import shutil   # pylint: disable=g-import-not-at-top
  import sweep_support   # pylint: disable=g-import-not-at-top
  from experiments import report   # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir, ignore=shutil.ignore_patterns(".lock"))
  rows_before = (workdir / "results.csv").read_bytes()
  config = sweep_support.config()
  with config.unlocked():
    config.report.criteria = "absolute"
  report.rewrite(config, str(workdir))
  text = (workdir / "report.md").read_text()
  assert "Criteria: absolute" in text and "extra test error" in text
  assert (workdir / "results.csv").read_bytes() == rows_before
  (workdir / "run_info.json").write_text('{"complete": false}')
  with pytest.raises(ValueError, match="holds no finished run"):
    report.rewrite(config, str(workdir))
