r"""Width sweep entry point.

  python -m experiments.width_sweep --config=configs/mnist1d_mlp.py --workdir=/tmp/mnist1d_mlp

With --report_only, a finished workdir's report.md and figures are rewritten from its
results.csv (e.g. after a change of the findings' criteria); nothing is trained.
"""
import logging as std_logging
import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import run as run_lib
from experiments.workdir_lock import WorkdirBusyError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 for a multi-process run; on clusters "
    "that JAX detects (SLURM, TPU pods, ...) pass --distributed instead.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with "
                                 "the cluster's auto-detected settings.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Rewrite report.md and the figures of a "
                                 "finished workdir from its results.csv; run no stage.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """Drops INFO lines of checkpointing internals so progress lines stay readable."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def _interrupted(signum, frame):
  del frame
  # Exit at once instead of raising: an exception raised at an arbitrary point can be swallowed
  # by library code that catches broad exceptions. Every stage resumes from its checkpoints and
  # caches (as after SIGKILL), and the kernel releases the workdir lock.
  name = signal.Signals(signum).name
  logging.error("interrupted (%s); rerun the same command to resume where it stopped.", name)
  logging.flush()
  sys.stderr.flush()
  os._exit(128 + signum)   # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if _COORDINATOR.value or _DISTRIBUTED.value:
    import jax  # pylint: disable=g-import-not-at-top
    # Cross-process collectives on CPU need an explicit implementation.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, _interrupted)
  if _REPORT_ONLY.value:
    from experiments import config_checks, report   # pylint: disable=g-import-not-at-top
    config_checks.check(_CONFIG.value)
    report.rewrite(_CONFIG.value, _WORKDIR.value)
    return
  try:
    run_lib.run(_CONFIG.value, _WORKDIR.value)
  except WorkdirBusyError as e:
    logging.error("%s", e)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
