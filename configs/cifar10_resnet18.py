r"""python -m experiments.width_sweep --config=configs/cifar10_resnet18.py --workdir=/tmp/cifar10

Hardware: one GPU (H100 class) or TPU; needs CIFAR-10 prepared offline (BUILD.md). Expected run
time on one H100, projected from timed slices on synthetic CIFAR-shaped data
(benchmarks/results/h100_gpu_check.md): training the originals and retrained references of 3
seeds x 5 widths for 100 epochs about 0.56 h; the unlearning grids about 2.8 h (mostly estimated
from SCRUB's measured cost); evaluation not included. Not yet run end to end.
`:smoke` shrinks it to tiny widths on synthetic 8x8 images (runs on a CPU). Activations are
bfloat16 (mixed precision: float32 parameters, optimizer state, BatchNorm statistics and loss;
tests/test_mixed_precision.py checks errors match float32 up to seed noise at smoke size);
`:float32` computes in float32 throughout (use it on CPUs, where bfloat16 is no faster: BUILD.md).
`:synthetic` runs the same pipeline on synthetic CIFAR-shaped images (32x32x3, 10 classes,
10,000 training and 2,000 test images, no data to prepare) and `:epochs=E` trains E epochs
and unlearns E epochs with every method: `:synthetic,epochs=2` is the GPU check's end-to-end
run of the whole pipeline (benchmarks/gpu_check.sh, part e).

The paper's setting: pre-activation ResNet-18 of Nakkiran widths on CIFAR-10.

Choices the study leaves open (PAPER.md): widths k in {4, 8, 16, 32, 64}; SGD momentum 0.9,
lr 0.1 with cosine decay, weight decay 5e-4, batch 128, crop+flip augmentation; 20% validation
split per class; 200 forget examples drawn uniformly.
"""
from configs import common


def get_config(arg=None):
  # epochs=0: the paper's 100 training epochs and every method's own unlearning epochs.
  arg = common.parse_arg(arg, smoke=False, float32=False, synthetic=False, epochs=0)
  c = common.base_config()
  c.dataset.name, c.dataset.kwargs = "cifar10", {}
  if arg.synthetic:
    c.dataset.name = "synthetic"
    c.dataset.kwargs = {"image_size": 32, "num_train": 10_000, "num_test": 2_000,
                        "num_classes": 10}
  c.model.name = "preact_resnet18"
  c.model.kwargs = {} if arg.float32 else {"compute_dtype": "bfloat16"}
  c.widths = (4, 8, 16, 32, 64)
  c.bucket_max_ratio = 2.0
  c.seeds = (0, 1, 2)
  epochs = arg.epochs or 100
  c.train.update(dict(learning_rate=0.1, epochs=epochs, augment=True,
                      checkpoint_every=min(5, epochs)))
  if arg.epochs:   # e.g. a short check of the whole pipeline: every method unlearns as long
    c.unlearn.epochs = {m: arg.epochs for m in c.unlearn.methods if m != "retrain"}
  if arg.smoke:
    c = common.shrink_for_smoke(c)
    c.model.kwargs = {}   # smoke runs on CPUs
  return c
