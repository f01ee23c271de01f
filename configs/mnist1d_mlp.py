r"""The offline default: MLPs of widths from clearly under- to clearly overparameterized on MNIST-1D.

  python -m experiments.width_sweep --config=configs/mnist1d_mlp.py --workdir=/tmp/mnist1d_mlp

Hardware: 2 CPU cores. Expected run time: see README/BUILD.md (training stage: about 2 minutes).
`:smoke` shrinks everything (tests).

Choices the study leaves open (PAPER.md): 2 hidden layers; widths 4..1024 (width 4 cannot fit the
4,000-example training set, width >= 256 interpolates it); SGD momentum 0.9, lr 0.05 with cosine
decay, weight decay 5e-4, batch 128, 150 epochs; 200 forget examples drawn uniformly.
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=False)
  c = common.base_config()
  c.dataset.name = "mnist1d"
  c.model.name, c.model.kwargs = "mlp", {"depth": 2}
  c.widths = (4, 16, 64, 256, 1024)
  c.seeds = (0, 1, 2)
  c.train.epochs = 150
  c.train.checkpoint_every = 25
  if arg.smoke:
    c = common.shrink_for_smoke(c)
  return c
