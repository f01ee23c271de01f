r"""The paper's setting: pre-activation ResNet-18 of Nakkiran widths on CIFAR-10.

  python -m experiments.width_sweep --config=configs/cifar10_resnet18.py --workdir=/tmp/cifar10

Hardware: one GPU (H100 class) or TPU; needs CIFAR-10 prepared offline (BUILD.md).
Expected run time: the training stage trains 2 x |widths| x |seeds| ResNets for 100 epochs; on an
H100 about 1.5-3 hours for the default grid (estimate from benchmarks/, see BUILD.md).
`:smoke` shrinks it to tiny widths on synthetic 8x8 images (runs on a CPU).

Choices the study leaves open (PAPER.md): widths k in {4, 8, 16, 32, 64}; SGD momentum 0.9,
lr 0.1 with cosine decay, weight decay 5e-4, batch 128, crop+flip augmentation; 20% validation
split per class; 200 forget examples drawn uniformly.
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, smoke=False)
  c = common.base_config()
  c.dataset.name, c.dataset.kwargs = "cifar10", {}
  c.model.name, c.model.kwargs = "preact_resnet18", {}
  c.widths = (4, 8, 16, 32, 64)
  c.bucket_max_ratio = 2.0
  c.seeds = (0, 1, 2)
  c.train.update(dict(learning_rate=0.1, epochs=100, augment=True, checkpoint_every=5))
  if arg.smoke:
    c = common.shrink_for_smoke(c)
  return c
