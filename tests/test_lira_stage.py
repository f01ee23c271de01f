"""The shadow-model attack stage: the halves, the wiring of in/out samples on synthetic
statistics (retrained ~ chance, a memorising original and a planted leak caught, an exact
unlearner not), and the stage end to end at smoke size on top of the reference sweep."""
import shutil
import types

import numpy as np
import pytest

import sweep_support
from experiments import config_checks, results
from experiments import run as run_lib
from experiments.stages import lira as lira_stage


def test_shadow_halves_forget_every_candidate_in_exactly_half_the_shadows():
  forget, retain = np.arange(0, 60, 3), np.setdiff1d(np.arange(60), np.arange(0, 60, 3))
  forget_sets, retain_sets = lira_stage.shadow_halves(forget, retain, 8, seed=0)
  assert forget_sets.shape == (8, 20) and retain_sets.shape == (8, 40)
  for f, r in zip(forget_sets, retain_sets):
    assert len(np.intersect1d(f, r)) == 0 and len(np.union1d(f, r)) == 60
  counts = np.bincount(forget_sets.ravel(), minlength=60)
  candidates = np.flatnonzero(counts)
  assert len(candidates) == 40 and set(forget) <= set(candidates)
  assert (counts[candidates] == 4).all()
  again, _ = lira_stage.shadow_halves(forget, retain, 8, seed=0)
  np.testing.assert_array_equal(forget_sets, again)
  with pytest.raises(ValueError, match="even number >= 4"):
    lira_stage.shadow_halves(forget, retain, 5, seed=0)


def test_width_rows_on_synthetic_statistics():
  """Memorised examples sit 4 above unseen ones, each example at its own level."""
  rng = np.random.default_rng(0)
  m, n = 64, 300
  level = rng.normal(0, 2, n)
  inside = np.zeros((m, n), bool)
  for j in range(0, m, 2):   # pairs split the examples, as the stage's halves do
    half = rng.permutation(n)[:n // 2]
    inside[j, half] = True
    inside[j + 1] = ~inside[j]
  noise = lambda k: rng.normal(0, 1, (k, n))
  shadow_orig = level + 4 + noise(m)
  shadow_retr = level + noise(m)
  stats = {
      "shadow_original": shadow_orig, "shadow_retrained": shadow_retr,
      "original": level + 4 + noise(10), "retrained": level + noise(10),
      # exact: the unlearned shadows and targets look retrained; noop: a method that forgets
      # nothing (shadows and targets); leaky: the targets forgot nothing although the shadows
      # did (a planted leak: only the offline test, which trusts no "in" sample, can see it).
      "shadow_exact": np.where(inside, level + noise(m), shadow_orig), "exact": level + noise(10),
      "shadow_noop": level + 4 + noise(m), "noop": level + 4 + noise(10),
      "shadow_leaky": np.where(inside, level + noise(m), shadow_orig),
      "leaky": level + 4 + noise(10)}
  ctx = types.SimpleNamespace(config=types.SimpleNamespace(lira=types.SimpleNamespace(
      fprs=(0.01,), bootstrap_resamples=100)))
  rows = lira_stage._width_rows(ctx, 8, stats.get, inside, ["exact", "noop", "leaky"])
  value = {(r["method"], r["metric"]): r["value"] for r in rows}
  for attack in lira_stage.ATTACKS:
    chance = value[(lira_stage.CHANCE, f"{attack}_auc")]
    assert abs(chance - 0.5) < 0.05 and value[(lira_stage.CHANCE, f"{attack}_tpr@0.01")] < 0.05
    assert value[(lira_stage.CHANCE, f"{attack}_auc_low")] < 0.5 < value[
        (lira_stage.CHANCE, f"{attack}_auc_high")]
    assert abs(value[("exact", f"{attack}_auc")] - 0.5) < 0.05
    for caught in (lira_stage.ORIGINAL, "noop") + (("leaky",) if attack == "offline" else ()):
      assert value[(caught, f"{attack}_auc")] > 0.95
      assert value[(caught, f"{attack}_tpr@0.01")] > 0.5
      assert value[(caught, f"{attack}_auc_low")] > 0.9
  assert value[("leaky", "online_auc")] < 0.6   # its "in" and "out" Gaussians coincide
  assert value[("leaky", "shadow_models")] == m
  assert value[("leaky", "target_members")] == 10
  assert value[(lira_stage.CHANCE, "target_members")] == 5


def test_lira_settings_are_checked():
  c = sweep_support.config()
  c.lira.shadow_models = 6
  c.lira.methods = ("ssd_typo",)
  with pytest.raises(ValueError, match="ssd_typo"):
    config_checks.check(c)
  c.lira.methods, c.lira.shadow_models = ("scrub",), 3
  with pytest.raises(ValueError, match="even number"):
    config_checks.check(c)
  c.lira.shadow_models, c.lira.fprs = 4, (0.0,)
  with pytest.raises(ValueError, match="false-positive"):
    config_checks.check(c)


def test_stage_end_to_end_on_the_reference_sweep(reference, tmp_path):
  workdir, values = reference
  work = tmp_path / "lira"
  shutil.copytree(workdir, work)
  c = sweep_support.config()
  c.lira.shadow_models, c.lira.methods, c.lira.bootstrap_resamples = 4, ("scrub",), 50
  run_lib.run(c, str(work))
  rows = results.read_csv(str(work / "results.csv"))
  # The sweep's own rows are unchanged: only the attack's rows are new.
  assert sweep_support.values([r for r in rows if r["stage"] != "lira"]) == values
  lira_rows = [r for r in rows if r["stage"] == "lira"]
  methods = {r["method"] for r in lira_rows}
  assert methods == {lira_stage.ORIGINAL, lira_stage.CHANCE, "scrub"}
  value = {(r["method"], int(r["width"]), r["metric"]): float(r["value"]) for r in lira_rows}
  for w in c.widths:
    for m in methods:
      for attack in lira_stage.ATTACKS:
        for metric in ("auc", "tpr@0.01", "tpr@0.001"):
          v = value[(m, w, f"{attack}_{metric}")]
          assert 0.0 <= v <= 1.0
          assert value[(m, w, f"{attack}_{metric}_low")] <= value[
              (m, w, f"{attack}_{metric}_high")]
      assert value[(m, w, "shadow_models")] == 4
  report = (work / "report.md").read_text()
  assert "Per-example membership inference" in report
  assert (work / "figures" / "lira_vs_width.png").exists()
  # A rerun restores the shadows and their statistics and gives the same rows.
  run_lib.run(c, str(work))
  assert results.read_csv(str(work / "results.csv")) == rows
