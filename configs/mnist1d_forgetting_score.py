r"""python -m experiments.width_sweep --config=configs/mnist1d_forgetting_score.py --workdir=/tmp/mnist1d_fs

Hardware: 2 CPU cores, no accelerator, no network. Expected run time: about 6 minutes on 2
cores (measured from a fresh workdir: 5 min 32 s wall with stages side by side, 10 min 45 s one
at a time before batch permutations were sorted in numpy, most of it the 64-model groups); on a
GPU the same config scales to the full width list (`--config.widths='(4,8,16,32,64,128,256)'`).
`:smoke` shrinks everything (tests).

The NeurIPS 2023 forgetting score under the challenge's protocol, on the offline default's
models (MNIST-1D, 2-hidden-layer MLP, same training recipe and grids): per width, the first
seed's original is unlearned 64 times at each study method's selected hyperparameters (privacy,
lambda = regions.lam), the runs differing only in their randomness, and scored against 64
retrained models; a ceiling (64 other retrained models) and a floor (64 originals of other
seeds) calibrate the score at that count. Three widths (under-, near- and overparameterized)
and the study's three methods keep it within the CPU budget; the sweep around it runs 3 seeds.
"""
from configs import common, mnist1d_mlp


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=False)
  c = mnist1d_mlp.get_config()
  c.widths = (8, 32, 128)
  c.seeds = (0, 1, 2)
  c.unlearn.methods = ("retrain", "scrub", "neggrad_plus", "l1_sparse")
  c.forgetting_score.models_per_side = 64
  c.lira.shadow_models = 0   # the default's shadow-model attack is reported there
  if arg.smoke:
    c = common.shrink_for_smoke(c)
    c.forgetting_score.models_per_side = 3
    c.forgetting_score.bootstrap_resamples = 50
  return c
