r"""python -m experiments.width_sweep --config=configs/mnist1d_mlp_baselines.py --workdir=/tmp/mnist1d_mlp_baselines

The baselines reviewers compare against, on README's default regime (the MNIST-1D MLP, its
widths, seeds and training): CF-k and EU-k (Goel et al. 2022), weight negation (NoT, Khalil et
al. 2025), MinNorm-OG (Block et al. 2025, unlearning under overparameterization) and the
NeurIPS 2023 challenge's winner (fanchuan), next to fine-tuning and the study's three
methods, tuned for the study's two goals and for retrain matching (Deep Unlearn's objective:
look like the retrained reference on the retain, forget and validation sets). Without the
shadow-model attack, so the default keeps its run time.

Hardware: 2 CPU cores, no accelerator, no network. Run time: 5 min 28 s from a cold start (a
fresh workdir and an empty compilation cache, 2 Xeon cores); MinNorm-OG is the slowest method
(131 s over the three buckets: a pseudo-inverse of 50 output gradients per member and step),
the other new ones 10-50 s. `:smoke` shrinks everything (tests); `:seeds=N`. Committed output:
docs/results/mnist1d_mlp_baselines/.

Grids: k in {1, 2} of the MLP's 3 layers (the classifier; the last hidden layer and the
classifier), learning rates from "barely moves" to "retrain-like" in 10 epochs; weight
negation negates the first layer (the paper's choice) at three learning rates; MinNorm-OG's
shrink from 0.01 (barely moves) to 0.5 (halves every weight outside the constraint span at the
first step); fanchuan's contrastive learning rate over two decades, 8 epochs as the reference.
"""
from configs import common
from configs import mnist1d_mlp


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=False, seeds=10)
  c = mnist1d_mlp.get_config(f"seeds={arg.seeds},shadows=0")
  c.unlearn.methods = ("retrain", "scrub", "neggrad_plus", "l1_sparse", "finetune", "cf_k",
                       "eu_k", "weight_negation", "minnorm_og", "fanchuan")
  c.unlearn.grids.update({
      "cf_k": {"last_layers": (1.0, 2.0), "learning_rate": (0.01, 0.1)},
      "eu_k": {"last_layers": (1.0, 2.0), "learning_rate": (0.01, 0.1)},
      "weight_negation": {"learning_rate": (0.01, 0.03, 0.1)},
      "minnorm_og": {"shrink": (0.01, 0.1, 0.5), "learning_rate": (1e-4, 1e-3)},
      "fanchuan": {"contrast_lr": (3e-4, 3e-3, 3e-2), "retain_lr": (0.002, 0.02)},
  })
  c.unlearn.epochs.update({m: 10 for m in ("cf_k", "eu_k", "weight_negation", "minnorm_og")})
  c.eval.goals = ("privacy", "bias_removal", "retrain_matching")
  if arg.smoke:
    c = common.shrink_for_smoke(c)
  return c
