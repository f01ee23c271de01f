"""The entry point end to end, and resuming a killed training run."""
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import smoke
from experiments import results, run as run_lib
from experiments import training_stage
from unlearn_jax.checkpoints import StageCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**train):
  c = smoke.get_config()
  c.compilation_cache_dir = ""
  c.widths = (4,)
  c.train.update(train)
  return c


def test_cli_smoke_run(tmp_path):
  workdir = tmp_path / "w"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.width_sweep", "--config=configs/smoke.py",
       f"--workdir={workdir}", "--config.compilation_cache_dir="],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = results.read_csv(str(workdir / "results.csv"))
  cfg = smoke.get_config()
  stages = {(r["stage"], r["width"], r["seed"]) for r in rows}
  assert len(stages) == 2 * len(cfg.widths) * len(cfg.seeds)
  errors = [float(r["value"]) for r in rows if r["metric"] == "error"]
  assert all(0.0 <= e <= 1.0 for e in errors)
  assert "epoch" in proc.stderr and "ETA" in proc.stderr


class _Killed(Exception):
  pass


def test_killed_training_resumes_to_the_same_parameters(tmp_path, monkeypatch):
  config = _config(epochs=4, checkpoint_every=1)
  full = run_lib.run(config, str(tmp_path / "full"))

  original_save = StageCheckpointer.save
  def save_then_die(self, step, state, meta):
    original_save(self, step, state, meta)
    if step == 2:
      self.wait()
      raise _Killed()
  monkeypatch.setattr(StageCheckpointer, "save", save_then_die)
  with pytest.raises(_Killed):
    run_lib.run(config, str(tmp_path / "resumed"))
  monkeypatch.setattr(StageCheckpointer, "save", original_save)
  resumed = run_lib.run(config, str(tmp_path / "resumed"))
  assert [r["value"] for r in full["rows"]] == [r["value"] for r in resumed["rows"]]

  # And the checkpointed parameters are bitwise equal.
  a = StageCheckpointer(str(tmp_path / "full" / "original" / "widths_4"))
  b = StageCheckpointer(str(tmp_path / "resumed" / "original" / "widths_4"))
  assert a.latest_step() == b.latest_step() == 4
  sa = a._manager.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  sb = b._manager.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
    np.testing.assert_array_equal(x, y)


def test_resume_refuses_a_workdir_with_other_members(tmp_path):
  run_lib.run(_config(epochs=1), str(tmp_path))
  other = _config(epochs=1)
  other.seeds = (5,)
  with pytest.raises(ValueError, match="holds different members"):
    run_lib.run(other, str(tmp_path))
