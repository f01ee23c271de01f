"""The offline default sweep end to end: wall time and peak memory of the real entry point.

Runs `python -m experiments.width_sweep --config=<config> --workdir=<fresh dir>` as a child
process, with the persistent compilation cache disabled so that the figure is a cold run
(compiles included) and repeatable. Peak memory is `ru_maxrss` of RUSAGE_CHILDREN: the largest
resident set of any child this process has waited for, so run nothing else as a child before it.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = "configs/mnist1d_mlp.py"


def run(config: str = DEFAULT_CONFIG, extra_args: tuple[str, ...] = (),
        keep_workdir: bool = False) -> list[dict]:
  workdir = tempfile.mkdtemp(prefix="bench_sweep_")
  cmd = [sys.executable, "-m", "experiments.width_sweep", f"--config={config}",
         f"--workdir={workdir}", "--config.compilation_cache_dir=", *extra_args]
  start = time.perf_counter()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  wall = time.perf_counter() - start
  # Linux reports ru_maxrss in KiB (macOS in bytes).
  maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  peak_mib = maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
  if not keep_workdir:
    shutil.rmtree(workdir, ignore_errors=True)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
  return [{
      "benchmark": "sweep", "config": config,
      "command": " ".join(cmd[1:]), "strategy": "config default", "wall_s": wall,
      "peak_rss_mib": peak_mib, "rate": None, "unit": None, "rate_per_member": None,
      "workdir": workdir if keep_workdir else None,
  }]
