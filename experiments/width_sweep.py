r"""Width sweep entry point.

  python -m experiments.width_sweep --config=configs/mnist1d_mlp.py --workdir=/tmp/mnist1d_mlp
"""
import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import run as run_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """Drops INFO lines of checkpointing internals so progress lines stay readable."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  run_lib.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
