"""No silent wrong results: caches keyed by what they depend on, one run per workdir, completion
marked, diverged members NaN, clear errors; and evaluators that plug in with one file."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sweep_support
from experiments import evaluators, results, run as run_lib, workdir_lock
from experiments.layout import Layout
from experiments.stages import train as train_stage, unlearn as unlearn_stage
from unlearn_jax import methods as methods_lib
from unlearn_jax.registry import Registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _values(workdir):
  return sweep_support.values(results.read_csv(os.path.join(workdir, "results.csv")))


def _count_heavy_work(monkeypatch) -> list:
  calls = []
  real_train, real_unlearn = train_stage.train_lib.train, methods_lib.unlearn
  monkeypatch.setattr(train_stage.train_lib, "train",
                      lambda *a, **k: calls.append("train") or real_train(*a, **k))
  monkeypatch.setattr(unlearn_stage.methods_lib, "unlearn",
                      lambda *a, **k: calls.append("unlearn") or real_unlearn(*a, **k))
  return calls


def test_rerun_with_other_eval_and_region_settings_equals_a_fresh_run(reference, tmp_path,
                                                                      monkeypatch):
  config = sweep_support.config()
  config.eval.mia_max_train = 50
  config.regions.num_anchors = 3
  rerun = tmp_path / "rerun"
  shutil.copytree(reference[0], rerun)
  calls = _count_heavy_work(monkeypatch)
  run_lib.run(config, str(rerun))
  assert not calls   # only evaluation and regions were recomputed
  monkeypatch.undo()
  fresh = tmp_path / "fresh"
  run_lib.run(config, str(fresh))
  rerun_values, fresh_values = _values(rerun), _values(fresh)
  assert rerun_values.keys() == fresh_values.keys()
  np.testing.assert_array_equal(np.array([rerun_values[k] for k in fresh_values]),
                                np.array(list(fresh_values.values())))
  changed = {k[8] for k in fresh_values if fresh_values[k] != reference[1].get(k)
             and not (np.isnan(fresh_values[k]) and np.isnan(reference[1].get(k, 0.0)))}
  assert "mia_efficacy" in changed and any(m.startswith("ball_changed") for m in changed)


DOCS = os.path.join(ROOT, "docs", "evaluators.md")


def test_evaluator_from_the_docs_plugs_in_with_one_file_and_a_config_entry(reference, tmp_path,
                                                                           monkeypatch):
  text = open(DOCS).read()
  module_code = re.search(r"```python\n(# experiments/evaluators/calibration.py.*?)```", text,
                          re.S).group(1)
  registry = Registry("evaluator", dict(evaluators.REGISTRY.items()))
  monkeypatch.setattr(evaluators, "REGISTRY", registry)
  exec(compile(module_code, "calibration.py", "exec"), {})   # what importing the file does
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  config = sweep_support.config()
  config.eval.evaluators = tuple(config.eval.evaluators) + ("calibration",)
  config.eval.ece_bins = 15
  calls = _count_heavy_work(monkeypatch)
  run_lib.run(config, str(workdir))
  assert not calls
  values = _values(workdir)
  ece = {k: v for k, v in values.items() if k[8] == "ece"}
  assert ece and all(0.0 <= v <= 1.0 for v in ece.values() if np.isfinite(v))
  assert {k: v for k, v in values.items() if k[8] != "ece"}.keys() == reference[1].keys()
  assert "## Expected calibration error" in (workdir / "report.md").read_text()


def test_second_run_on_a_busy_workdir_is_refused_at_once(tmp_path):
  layout = Layout(str(tmp_path))
  with workdir_lock.hold(layout.lock):
    start = time.time()
    with pytest.raises(workdir_lock.WorkdirBusyError, match="in use by another run"):
      run_lib.run(sweep_support.config(), str(tmp_path))
    assert time.time() - start < 5
  with workdir_lock.hold(layout.lock):   # released when the holder's block ends
    pass


def test_completion_is_marked_only_after_every_output(reference, tmp_path, monkeypatch):
  import json  # pylint: disable=g-import-not-at-top
  info = lambda d: json.loads((d / "run_info.json").read_text())
  assert info(reference[0])["complete"] is True
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)

  def killed(*a, **k):
    raise RuntimeError("killed while writing results")
  monkeypatch.setattr(results, "write_csv", killed)
  with pytest.raises(RuntimeError, match="killed"):
    run_lib.run(sweep_support.config(), str(workdir))
  assert info(workdir)["complete"] is False


def test_damaged_cache_entries_are_recomputed(reference, tmp_path, caplog):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  cache = workdir / "cache" / "evaluate"
  damaged = sorted(cache.glob("*.json"))[0]
  damaged.write_text(damaged.read_text()[:20])
  npz = sorted(cache.glob("scrub*.npz"))[0]
  npz.write_bytes(npz.read_bytes()[:100])
  with caplog.at_level("WARNING"):
    run_lib.run(sweep_support.config(), str(workdir))
  assert "damaged" in caplog.text and str(npz.with_suffix("")) in caplog.text
  assert _values(workdir) == reference[1]


def test_changed_data_file_is_refused_not_reused(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "data.npz"
  arrays = dict(x_train=rng.normal(size=(160, 6)).astype(np.float32),
                y_train=rng.integers(0, 3, 160), x_test=rng.normal(size=(60, 6)).astype(np.float32),
                y_test=rng.integers(0, 3, 60))
  np.savez(path, **arrays)
  config = sweep_support.config()
  config.dataset.name, config.dataset.kwargs = "npz", {"path": str(path)}
  config.unlearn.methods = ("retrain",)
  config.train.epochs = 1
  run_lib.run(config, str(tmp_path / "w"))
  arrays["x_train"][0, 0] += 1.0   # fixed in place, same path
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match="trained with other data settings"):
    run_lib.run(config, str(tmp_path / "w"))


def test_diverged_originals_have_nan_metrics_everywhere(tmp_path):
  config = sweep_support.config()
  config.unlearn.methods = ("retrain", "finetune")
  config.train.learning_rate = 1e4
  out = run_lib.run(config, str(tmp_path))
  rows = out["rows"]
  info = (tmp_path / "report.md").read_text()
  assert "## Diverged members" in info and "original" in info.split("## Diverged members")[1]
  bad = {(r["width"], r["seed"]) for r in rows if r["stage"] == "original"
         and r["metric"] == "error" and np.isnan(float(r["value"]))}
  assert bad
  for r in rows:
    if r["stage"] in ("original", "regions") and (r["width"], r["seed"]) in bad:
      assert np.isnan(float(r["value"])), r
    if r["metric"].endswith("retrained") and (r["width"], r["seed"]) in bad:
      assert np.isnan(float(r["value"])), r


def test_interrupted_cli_says_how_to_resume(tmp_path):
  # SIGINT (Ctrl-C) goes through the same handler, with exit code 130.
  sig, code = signal.SIGTERM, 143
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.width_sweep", "--config=configs/smoke.py",
       f"--workdir={tmp_path}", "--config.compilation_cache_dir="],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 120
  while not (tmp_path / "run_info.json").exists() and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(sig)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == code, out[-2000:]
  assert "rerun the same command to resume" in out


@pytest.mark.parametrize("damage", ["arrays", "metadata"])
def test_damaged_checkpoint_step_falls_back_to_the_previous_one(reference, tmp_path, caplog,
                                                                damage):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  latest = workdir / "original" / "widths_2-8" / "4"
  files = [p for p in latest.rglob("*") if p.is_file() and
           (("meta" in p.parts) == (damage == "metadata"))]
  assert files
  for p in files:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])
  with caplog.at_level("INFO"):
    run_lib.run(sweep_support.config(), str(workdir))
  assert "is damaged" in caplog.text and str(latest) in caplog.text
  assert "resuming at epoch 3/4" in caplog.text
  assert _values(workdir) == reference[1]


def test_rerun_under_another_strategy_is_refused_before_any_work(reference, tmp_path,
                                                                 monkeypatch):
  """Member chunks change last bits (test_train.py), so the strategy that ran is part of the
  training identity: a finished workdir rerun under another one refuses at once, naming the
  strategy, instead of reusing checkpoints and caches made under the first."""
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  config = sweep_support.config()
  config.strategy = "1,scan"
  calls = _count_heavy_work(monkeypatch)
  with pytest.raises(ValueError, match=r"trained with other strategy settings"):
    run_lib.run(config, str(workdir))
  assert not calls
  plain = {"members": [1], "train": {"epochs": 2}}
  assert train_stage.changed_settings(plain, dict(plain)) == []
  assert train_stage.changed_settings(plain, dict(plain, train={"epochs": 3})) == ["train"]
