"""The entry point end to end, as a user runs it."""
import os
import subprocess
import sys

from configs import smoke
from experiments import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_smoke_sweep_writes_results_report_and_figures(tmp_path):
  workdir = tmp_path / "w"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.width_sweep", "--config=configs/smoke.py",
       f"--workdir={workdir}", "--config.compilation_cache_dir="],
      cwd=ROOT, capture_output=True, text=True, timeout=900,
      env=dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1"))   # tiny programs: fast compiles
  assert proc.returncode == 0, proc.stderr[-3000:]
  cfg = smoke.get_config()
  rows = results.read_csv(str(workdir / "results.csv"))
  assert set(rows[0]) == set(results.COLUMNS)
  n_members = len(cfg.widths) * len(cfg.seeds)
  for stage in ("original", "retrained"):
    assert len({(r["width"], r["seed"]) for r in rows if r["stage"] == stage}) == n_members
  methods = [m for m in cfg.unlearn.methods if m != "retrain"]
  selected = {(r["method"], r["width"], r["seed"], r["goal"], r["lam"]) for r in rows
              if r["stage"] == "selected"}
  assert len(selected) == len(methods) * n_members * len(cfg.eval.goals) * len(cfg.eval.lambdas)
  errors = [float(r["value"]) for r in rows if r["metric"] == "error"]
  assert errors and all(0.0 <= e <= 1.0 for e in errors)
  report = (workdir / "report.md").read_text()
  for finding in ("### 1.", "### 2.", "### 3.", "### 4."):
    assert finding in report
  for fig in ("errors_vs_width", "tradeoff_privacy", "tradeoff_bias_removal", "mia_vs_width",
              "regions_vs_width", f"plane_width_{min(cfg.widths)}",
              f"plane_width_{max(cfg.widths)}"):
    assert (workdir / "figures" / f"{fig}.png").stat().st_size > 1000, fig
  # Progress lines with rates and ETA.
  assert "ETA" in proc.stderr and "stage/s" in proc.stderr


def test_every_config_loads_and_smoke_shrinks_it():
  import pytest
  from configs import (cifar10_resnet18, mnist1d_cnn, mnist1d_cnn_baselines,
                       mnist1d_forgetting_score, mnist1d_mlp, mnist1d_mlp_baselines)
  for module in (mnist1d_mlp, mnist1d_cnn, mnist1d_mlp_baselines, mnist1d_cnn_baselines,
                 mnist1d_forgetting_score, cifar10_resnet18, smoke):
    full, small = module.get_config(), module.get_config("smoke")
    assert small.train.epochs <= 4 and max(small.widths) <= max(full.widths)
    assert small.dataset.name in ("synthetic", "mnist1d")
    assert module.__doc__.lstrip().startswith("python -m experiments.width_sweep")
  short = cifar10_resnet18.get_config("synthetic,epochs=2")   # the GPU check's pipeline run
  assert short.dataset.name == "synthetic" and short.dataset.kwargs["image_size"] == 32
  assert short.train.epochs == 2 and set(short.unlearn.epochs.values()) == {2}
  with pytest.raises(ValueError, match="Unknown config argument 'fast'"):
    mnist1d_mlp.get_config("fast")
