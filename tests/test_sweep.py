"""The width sweep: resume after a kill, partial re-runs, device-count invariance, multi-process."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import sweep_support
from experiments import evaluators, results, run as run_lib
from experiments.stages import train as train_stage, unlearn as unlearn_stage
from unlearn_jax import methods as methods_lib
from unlearn_jax.evaluation import epsilon_score
from unlearn_jax.checkpoints import StageCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = sweep_support.METHODS
_config, _values = sweep_support.config, sweep_support.values


class _Killed(Exception):
  pass


def test_killed_run_resumes_to_identical_results(reference, tmp_path, monkeypatch):
  # Stages side by side (the reference ran them one at a time): killed while the originals are
  # still training next to the retrained references, and again mid-unlearning.
  ref_dir, ref_values = reference
  workdir = str(tmp_path)
  config = _config()
  config.stage_workers = 2
  save = StageCheckpointer.save

  def die_in_training(self, step, state, meta):
    save(self, step, state, meta)
    if meta.get("stage") == "retrained" and step == 2:
      self.wait()
      raise _Killed("killed mid-training")

  monkeypatch.setattr(StageCheckpointer, "save", die_in_training)
  with pytest.raises(_Killed):
    run_lib.run(config, workdir)
  monkeypatch.setattr(StageCheckpointer, "save", save)

  real_unlearn = unlearn_stage.run
  def die_in_unlearning(ctx, name, *args, **kwargs):
    if name == "l1_sparse":
      raise _Killed("killed mid-unlearning")
    return real_unlearn(ctx, name, *args, **kwargs)

  monkeypatch.setattr(unlearn_stage, "run", die_in_unlearning)
  with pytest.raises(_Killed):
    run_lib.run(config, workdir)
  monkeypatch.setattr(unlearn_stage, "run", real_unlearn)
  run_lib.run(config, workdir)
  resumed = _values(results.read_csv(os.path.join(workdir, "results.csv")))
  assert resumed.keys() == ref_values.keys()
  assert resumed == ref_values   # bitwise: the same programs ran on the same inputs

  # The final training checkpoints are bitwise equal too.
  for stage in ("original", "retrained"):
    a = StageCheckpointer(str(ref_dir / stage / "widths_2-8"))
    b = StageCheckpointer(os.path.join(workdir, stage, "widths_2-8"))
    restore = lambda c: c._manager.restore(c.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))["state"]
    for x, y in zip(jax.tree.leaves(restore(a)), jax.tree.leaves(restore(b))):
      np.testing.assert_array_equal(x, y)


def test_changing_a_grid_reruns_only_that_method(reference, tmp_path, monkeypatch):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  calls = []
  real = methods_lib.unlearn
  monkeypatch.setattr(unlearn_stage.methods_lib, "unlearn",
                      lambda method, *a, **k: calls.append(method.name) or real(method, *a, **k))
  trained = []
  real_train = train_stage.train_lib.train
  monkeypatch.setattr(train_stage.train_lib, "train",
                      lambda *a, **k: trained.append(1) or real_train(*a, **k))
  config = _config()
  config.unlearn.grids = dict(config.unlearn.grids, neggrad_plus={"alpha": (0.95,)})
  run_lib.run(config, str(workdir))
  values = _values(results.read_csv(str(workdir / "results.csv")))
  assert calls == ["neggrad_plus"] and not trained
  # Restored stages report the time they took when they ran, not the restore time.
  train_seconds = lambda d: {k: v for k, v in json.loads((d / "run_info.json").read_text())[
      "stage_seconds"].items() if k.startswith("train ")}
  assert train_seconds(workdir) == train_seconds(reference[0]) != {}
  ref = reference[1]
  assert {k: v for k, v in values.items() if k[1] == "scrub"} == {
      k: v for k, v in ref.items() if k[1] == "scrub"}
  assert {k[4] for k in values if k[1] == "neggrad_plus" and k[0] == "unlearned"} == {
      k[4] for k in values if k[1] == "neggrad_plus" and '"alpha": 0.95' in k[4]}


def _cli(workdir, extra_env=None, extra_args=(), log_name="log.txt"):
  """Starts the CLI; its output goes to a file (pipes of concurrent processes can deadlock)."""
  # Few compiler optimisations, as in this process (conftest.py): tiny programs compile faster.
  env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1", **(extra_env or {}))
  cmd = [sys.executable, "-m", "experiments.width_sweep", "--config=configs/smoke.py",
         f"--workdir={workdir}", "--config.compilation_cache_dir=",
         "--config.train.epochs=4", "--config.train.checkpoint_every=1",
         f"--config.unlearn.methods={METHODS!r}", *extra_args]
  log = open(os.path.join(workdir, log_name), "w")
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait(proc, workdir, log_name="log.txt"):
  try:
    proc.wait(timeout=600)
  except subprocess.TimeoutExpired:
    proc.kill()   # e.g. its peer process died and it waits in a collective
    proc.wait()
  with open(os.path.join(workdir, log_name)) as f:
    return f.read()


def _assert_close(values, ref_values):
  assert values.keys() == ref_values.keys()
  a = np.array([values[k] for k in ref_values])
  b = np.array([ref_values[k] for k in ref_values])
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-3)


def test_one_device_gives_the_same_results_as_four(reference, tmp_path):
  proc = _cli(tmp_path, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
  out = _wait(proc, tmp_path)
  assert proc.returncode == 0, out[-3000:]
  _assert_close(_values(results.read_csv(str(tmp_path / "results.csv"))), reference[1])


def test_two_process_run_matches(reference, tmp_path):
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  procs = [_cli(tmp_path, env, (f"--coordinator_address=localhost:{port}", "--num_processes=2",
                                f"--process_id={i}"), f"log{i}.txt") for i in range(2)]
  # If one process fails, its peer would wait in a collective: stop both then.
  deadline = time.time() + 600
  while any(p.poll() is None for p in procs) and time.time() < deadline:
    if any(p.poll() not in (None, 0) for p in procs):
      break
    time.sleep(1)
  for p in procs:
    if p.poll() is None:
      p.kill()
  outs = [_wait(p, tmp_path, f"log{i}.txt") for i, p in enumerate(procs)]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert "2 device(s)" in outs[0]
  _assert_close(_values(results.read_csv(str(tmp_path / "results.csv"))), reference[1])


def test_diverging_members_are_reported_and_never_selected(reference, tmp_path, caplog):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  config = _config()
  config.unlearn.methods = ("retrain", "gradient_ascent")
  config.unlearn.grids = dict(config.unlearn.grids,
                              gradient_ascent={"learning_rate": (1e-4, 1e30)})
  with caplog.at_level("WARNING"):
    run_lib.run(config, str(workdir))
  assert "diverged" in caplog.text and "gradient_ascent" in caplog.text
  rows = results.read_csv(str(workdir / "results.csv"))
  huge = [r for r in rows if r["stage"] == "unlearned" and '"learning_rate": 1e+30' in
          r["hparams"] and r["metric"] == "error"]
  assert huge and all(np.isnan(float(r["value"])) for r in huge)
  selected = [r for r in rows if r["stage"] == "selected" and r["method"] == "gradient_ascent"]
  assert selected and all('"learning_rate": 0.0001' in r["hparams"] for r in selected)
  assert (workdir / "report.md").exists()


@pytest.mark.parametrize("change, what", [("seeds", "members"), ("epochs", "train")])
def test_resume_refuses_checkpoints_made_under_other_settings(reference, tmp_path, change, what):
  shutil.copytree(reference[0], tmp_path / "w")
  config = _config()
  if change == "seeds":
    config.seeds = (5, 6)
  else:
    config.train.epochs = 6
  with pytest.raises(ValueError, match=f"trained with other {what} settings"):
    run_lib.run(config, str(tmp_path / "w"))


def test_new_originals_are_unlearned_and_evaluated_afresh(reference, tmp_path, monkeypatch):
  # Retraining the originals under other settings (after deleting them, as the resume error
  # says) must not reuse unlearned models or metrics of the old originals.
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  for stage in ("original", "retrained"):
    shutil.rmtree(workdir / stage)
  calls = []
  real = methods_lib.unlearn
  monkeypatch.setattr(unlearn_stage.methods_lib, "unlearn",
                      lambda method, *a, **k: calls.append(method.name) or real(method, *a, **k))
  config = _config()
  config.train.learning_rate *= 0.5
  run_lib.run(config, str(workdir))
  assert sorted(set(calls)) == sorted(m for m in METHODS if m != "retrain")
  values = _values(results.read_csv(str(workdir / "results.csv")))
  changed = [k for k in values if k[0] == "unlearned" and k[8] == "error"
             and values[k] != reference[1].get(k)]
  assert changed


@pytest.mark.parametrize("field, value, message", [
    ("unlearn.grids", {"neggrad+": {"alpha": (0.5,)}}, r"unlearn.grids names unknown method"),
    ("unlearn.methods", ("scrub", "scrubb"), r"unlearn.methods names unknown method.*'scrubb'"),
    ("eval.goals", ("privacy", "utility"), r"unknown goal\(s\) \['utility'\]"),
    ("regions.lam", 0.5, r"regions.lam=0.5 must be one of"),
    ("widths", ("a", 8), r"config.widths has 'a'.*positive integers"),
    ("widths", (2.5, 8), r"config.widths has 2.5.*model 'mlp' needs positive integers"),
    ("widths", (), r"config.widths is empty"),
    ("train.batch_size", 0, r"config.train.batch_size=0; it must be a positive integer"),
    ("dataset.forget_size", 0, r"config.dataset.forget_size=0"),
    ("unlearn.hparams", {"retrain": {"no_such_hparam": 1.0}},
     r"unlearn.hparams\['retrain'\] would be ignored.*config.train"),
    ("unlearn.epochs", {"retrain": 3}, r"unlearn.epochs\['retrain'\] would be ignored"),
    ("eval.evaluators", ("errors", "lira"), r"unknown evaluator\(s\) \['lira'\]"),
    ("eval.evaluators", ("loss_mia",), r"must include 'errors'"),
    ("stage_workers", -1, r"config.stage_workers=-1; it must be an integer >= 0"),
    ("seeds", (0, 0), r"config.seeds=\(0, 0\) repeats \[0\]: its members would be copies"),
    ("widths", (8, 8), r"config.widths=\(8, 8\) repeats \[8\]"),
    ("eval.lambdas", (1.5,), r"config.eval.lambdas=\(1.5,\) has \[1.5\].*lie in \[0, 1\]"),
    ("eval.lambdas", (0.2, 0.2), r"config.eval.lambdas=\(0.2, 0.2\) repeats \[0.2\]"),
])
def test_bad_settings_fail_before_any_work(tmp_path, field, value, message):
  config = _config()
  *sections, name = field.split(".")
  target = config
  for section in sections:
    target = target[section]
  setattr(target, name, value)
  with pytest.raises(ValueError, match=message):
    run_lib.run(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_forgetting_score_leaves_out_diverged_members_on_both_sides():
  config = _config()
  score = evaluators.REGISTRY.get("forgetting_score").over_group
  rng = np.random.default_rng(0)
  conf, retrained = rng.normal(size=(4, 20)), rng.normal(size=(4, 20))
  conf[1, 3], retrained[2, 0] = np.nan, np.inf
  key = ("forget", "logit_conf")
  out = score({key: conf}, {key: retrained}, config)
  expected = epsilon_score.forget_score(conf[[0, 2, 3]], retrained[[0, 1, 3]])
  assert out[("forget", "epsilon_score")] == pytest.approx(expected)
  retrained[[0, 1], 5] = np.nan   # 2 finite retrained members < epsilon_min_models = 3
  assert score({key: conf}, {key: retrained}, config) == {}


def test_layer_methods_and_retrain_matching_run_through_the_sweep(tmp_path):
  """The newer baselines unlearn in the sweep; the retrain-matching goal selects,
  per seed, the grid point whose errors are closest to that seed's retrained reference."""
  from unlearn_jax.evaluation import tuning
  c = sweep_support.config()
  c.unlearn.methods = ("retrain", "cf_k", "eu_k", "weight_negation", "minnorm_og", "fanchuan")
  c.unlearn.grids = {"cf_k": {"last_layers": (1.0, 2.0)},
                     "weight_negation": {"learning_rate": (0.001, 0.1)}}
  c.eval.goals = ("privacy", "retrain_matching")
  c.eval.evaluators = ("errors",)
  run_lib.run(c, str(tmp_path))
  rows = results.read_csv(str(tmp_path / "results.csv"))
  lam = str(c.eval.lambdas[0])
  for method in ("cf_k", "eu_k", "weight_negation", "minnorm_og", "fanchuan"):
    grid = [r for r in rows if r["stage"] == "unlearned" and r["method"] == method]
    assert grid, method
    for width in sorted({r["width"] for r in grid}):
      for seed in sorted({r["seed"] for r in grid}):
        err = lambda stage, split, rs: {r["hparams"]: float(r["value"]) for r in rs
                                        if r["stage"] == stage and r["width"] == width
                                        and r["seed"] == seed and r["split"] == split
                                        and r["metric"] == "error"}
        points = sorted(err("unlearned", "val", grid))
        e = {s: np.array([err("unlearned", s, grid)[p] for p in points])
             for s in tuning.REFERENCE_SPLITS}
        ref = {s: list(err("retrained", s, rows).values())[0] for s in tuning.REFERENCE_SPLITS}
        values = tuning.objective_values("retrain_matching", float(lam), val_error=e["val"],
                                         forget_error=e["forget"], retain_error=e["retain"],
                                         reference=ref)
        chosen = [r["hparams"] for r in rows if r["stage"] == "selected"
                  and r["method"] == method and r["goal"] == "retrain_matching"
                  and r["lam"] == lam and r["width"] == width and r["seed"] == seed]
        assert chosen, (method, width, seed)   # ties: any minimiser (select takes the first)
        assert values[points.index(chosen[0])] == values.min(), (method, width, seed)
  report = (tmp_path / "report.md").read_text()
  assert "retrain_matching" in report and "MinNorm-OG across widths" in report
