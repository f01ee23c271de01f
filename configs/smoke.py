r"""python -m experiments.width_sweep --config=configs/smoke.py --workdir=/tmp/smoke

Hardware: any CPU. Expected run time: about 30 s on 2 CPU cores, most of it compilation (about
20 s with a warm compilation cache).

The whole pipeline on the tiny synthetic dataset, every method with one or two grid points (tests).
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=True)
  del arg  # this config is small already; `:smoke` is accepted for uniformity
  c = common.base_config()
  c.dataset.name = "synthetic"
  c.dataset.kwargs = {"num_train": 300, "num_test": 120, "num_classes": 4, "length": 16}
  c.dataset.forget_size = 20
  c.model.name, c.model.kwargs = "mlp", {"depth": 1}
  c.widths = (2, 8)   # one padded bucket: everything compiles once
  c.seeds = (0, 1)
  c.train.epochs = 4
  c.train.batch_size = 32
  c.train.checkpoint_every = 2
  shrunk = common.shrink_for_smoke(common.base_config())
  c.unlearn, c.regions, c.eval = shrunk.unlearn, shrunk.regions, shrunk.eval
  return c
