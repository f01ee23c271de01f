r"""python -m experiments.width_sweep --config=configs/mnist1d_mlp.py --workdir=/tmp/mnist1d_mlp

Hardware: 2 CPU cores, no accelerator, no network. Expected run time: about 13 minutes (measured
on 2 Xeon cores with a fresh workdir and no compilation cache: 12 min 21 s - 13 min 10 s wall,
most of it the shadow-model attack's 128 shadow trainings per width); without the attack
(`:shadows=0`) about 4 minutes (the mislabeled variant took 3 min 58 s with stages side by side
and numpy-sorted batches, 7 min 4 s one at a time before either; 10 seeds, 5 widths, 9 methods
over their grids). `:smoke` shrinks everything (tests); `:seeds=N` sets the number of seeds;
`:shadows=M` the shadow models per width (0: off); `:all_widths` runs 7 widths (4..256;
about 12.5 minutes at 10 seeds without the attack, before stages ran side by side).

The offline default: MLPs of widths from clearly under- to clearly overparameterized on MNIST-1D.

Choices the study leaves open (PAPER.md): 2 hidden layers; widths 4, 16, 32, 64, 256 (width 4
reaches only ~58% training error on the 3,200-example training split, widths >= 64 interpolate
it); SGD momentum 0.9, lr 0.05 with cosine decay, weight decay 5e-4, batch 128, 150 epochs; 200
forget examples drawn uniformly; method grids widened for a small MLP (below); 10 seeds, so every
finding in the report comes with a bootstrap interval over seeds; 64 shadow models per width for
the per-example attack (LiRA / U-LiRA) on the study's three methods.
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=False, seeds=10, all_widths=False, shadows=64)
  c = common.base_config()
  c.dataset.name = "mnist1d"
  c.model.name, c.model.kwargs = "mlp", {"depth": 2}
  # Under-, critically and overparameterized; `:all_widths` adds 8 and 128 (the 7-width sweep,
  # e.g. `:all_widths,seeds=3` for the earlier 3-seed default).
  c.widths = (4, 8, 16, 32, 64, 128, 256) if arg.all_widths else (4, 16, 32, 64, 256)
  c.seeds = tuple(range(arg.seeds))
  c.train.epochs = 150
  c.train.checkpoint_every = 25
  # The methods' default grids follow the reference code's CIFAR/ResNet values, which barely
  # move a small MLP in a few epochs; these ranges reach from "no change" to "retrain-like".
  c.unlearn.grids = {
      "scrub": {"msteps": (2.0, 5.0), "alpha": (0.5,), "learning_rate": (0.005, 0.02, 0.05)},
      "neggrad_plus": {"alpha": (0.5, 0.7, 0.9, 0.95), "learning_rate": (0.01, 0.05)},
      "l1_sparse": {"gamma": (1e-4, 3e-4, 1e-3, 3e-3), "learning_rate": (0.01, 0.05)},
      "finetune": {"learning_rate": (0.01, 0.03, 0.1)},
      "gradient_ascent": {"learning_rate": (1e-3, 3e-3, 1e-2, 3e-2)},
      "random_labels": {"learning_rate": (0.01, 0.03, 0.1)},
      "salun": {"salient_fraction": (0.1, 0.3, 0.5), "learning_rate": (0.01, 0.05)},
      "bad_teacher": {"learning_rate": (0.01, 0.03, 0.1), "forget_weight": (0.3, 1.0)},
  }
  c.unlearn.epochs = {m: 10 for m in ("scrub", "neggrad_plus", "l1_sparse", "finetune",
                                      "random_labels", "salun")}
  c.unlearn.epochs.update({"gradient_ascent": 5, "bad_teacher": 3})
  # Per-example membership inference (LiRA / U-LiRA) with this many shadow models per width for
  # the study's three methods; `:shadows=0` turns it off.
  c.lira.shadow_models = arg.shadows
  if arg.smoke:
    c = common.shrink_for_smoke(c)
  return c
