"""The forgetting score under the challenge's protocol: calibration on synthetic outputs, and the
stage end to end at smoke size."""
import shutil
import types

import numpy as np

import sweep_support
from experiments import run as run_lib
from experiments.stages import forgetting_score


def _score(group, reference):
  ctx = types.SimpleNamespace(config=types.SimpleNamespace(
      forgetting_score=types.SimpleNamespace(bootstrap_resamples=200)))
  rows = forgetting_score._score_rows(ctx, "m", 8, group, reference)
  return {r["metric"]: r["value"] for r in rows}


def test_calibration_pair_on_synthetic_outputs():
  rng = np.random.default_rng(0)
  k, n = 32, 60
  reference = rng.normal(size=(k, n))
  ceiling = _score(rng.normal(size=(k, n)), reference)            # same generator
  shifted = _score(rng.normal(loc=1.0, size=(k, n)), reference)   # 1-SD shift
  floor = _score(rng.normal(loc=3.0, size=(k, n)), reference)     # 3-SD shift
  assert ceiling["epsilon_score"] > shifted["epsilon_score"] > floor["epsilon_score"]
  assert ceiling["epsilon_score_low"] > shifted["epsilon_score_high"]
  for s in (ceiling, shifted, floor):
    assert s["epsilon_score_low"] <= s["epsilon_score"] <= s["epsilon_score_high"]
    assert s["models_per_side"] == k


def test_diverged_models_are_left_out_and_too_few_are_skipped():
  rng = np.random.default_rng(1)
  group, reference = rng.normal(size=(4, 10)), rng.normal(size=(4, 10))
  group[0, 3] = np.nan
  assert _score(group, reference)["models_per_side"] == 3
  assert _score(group[:3], reference) == {}


def test_per_seed_group_score_rows_one_per_width():
  from experiments import evaluators  # pylint: disable=g-import-not-at-top
  from experiments.stages import evaluate  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  key = ("forget", "logit_conf")

  def evaluated(widths_of_members):
    models = types.SimpleNamespace(widths=(4, 8), member_widths=np.asarray(widths_of_members))
    return evaluate.Evaluated(models, {}, {}, {key: rng.normal(size=(len(widths_of_members), 12))})
  group, reference = evaluated([4, 4, 4, 8, 8, 8]), evaluated([4, 4, 4, 8, 8, 8, 8])
  ctx = types.SimpleNamespace(
      evaluators=[evaluators.REGISTRY.get("forgetting_score")],
      config=types.SimpleNamespace(eval=types.SimpleNamespace(epsilon_min_models=3)))
  rows = evaluate.group_rows(ctx, "selected", "scrub", group, reference, chosen=[0, 1, 2, 3, 4, 5],
                             goal="privacy", lam=0.4)
  assert [(r["width"], r["seed"], r["metric"]) for r in rows] == [
      (4, "all", "epsilon_score"), (8, "all", "epsilon_score")]
  from unlearn_jax.evaluation import epsilon_score  # pylint: disable=g-import-not-at-top
  assert rows[1]["value"] == epsilon_score.forget_score(group.per_example[key][3:],
                                                        reference.per_example[key][3:])


def test_stage_scores_every_width_and_method_with_its_calibration(reference, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  config = sweep_support.config()
  config.forgetting_score.models_per_side = 3
  config.forgetting_score.bootstrap_resamples = 50
  rows = [r for r in run_lib.run(config, str(workdir))["rows"]
          if r["stage"] == "forgetting_score"]
  methods = {"retrain (ceiling)", "original (floor)", "scrub", "neggrad_plus", "l1_sparse"}
  for w in config.widths:
    got = {r["method"]: {} for r in rows if r["width"] == w}
    for r in rows:
      if r["width"] == w:
        got[r["method"]][r["metric"]] = r["value"]
    assert set(got) == methods
    for scores in got.values():
      assert scores["models_per_side"] == 3
      assert scores["epsilon_score_low"] <= scores["epsilon_score"] <= scores["epsilon_score_high"]
  assert "forgetting score" in (workdir / "report.md").read_text().lower()


def test_cached_confidences_are_recomputed_under_another_eval_batch_size(tmp_path, monkeypatch):
  # The inference batch size can move last bits (as the strategy can), so it keys the cache.
  calls = []

  def fake_predict(model, params, batch_stats, x, *, batch_size, strategy):
    calls.append(batch_size)
    return np.zeros((2, len(x), 3), np.float32)

  monkeypatch.setattr(forgetting_score.train_lib, "predict_logits", fake_predict)
  splits = types.SimpleNamespace(x_train=np.zeros((6, 4), np.float32),
                                 y_train=np.array([0, 1, 2, 0, 1, 2]), forget_idx=np.array([1, 4]))
  models = types.SimpleNamespace(name="group_scrub", widths=(4,), members=[{"seed": 0}] * 2,
                                 identity={"group": "scrub"}, model=None, strategy=None,
                                 variables=types.SimpleNamespace(params=None, batch_stats=None),
                                 diverged=np.zeros(2, bool))

  def ctx(eval_batch_size):
    return types.SimpleNamespace(
        config=types.SimpleNamespace(eval_batch_size=eval_batch_size), splits=splits,
        fingerprint="data", writer=True,
        layout=types.SimpleNamespace(group_confidences=lambda *a: str(tmp_path / "conf")))

  for size in (1024, 1024, 256, 256):
    assert forgetting_score.forget_confidences(ctx(size), models).shape == (2, 2)
  assert calls == [1024, 256]
