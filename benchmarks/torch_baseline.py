r"""S seeds of an MNIST-1D model trained through the library's public API (JAX, the members
vmapped) against the same S models trained one at a time by a plain PyTorch loop.

  python -m benchmarks.torch_baseline --widths=64,256 --seeds=16 --steps=2000 \
      [--model=mlp|cnn] [--formulation=auto|flax|shifted] [--cache_dir=DIR] [--out=FILE.md] \
      [--frameworks=jax,torch]

Both sides train the same network by SGD with momentum 0.9 (no weight decay), batch 128, on the
same MNIST-1D training arrays, for the same number of steps: whole epochs (reshuffled, the
partial last batch dropped), as many as reach `--steps`, so the step count is rounded up to a
multiple of the steps per epoch. `--model=mlp`: 2 hidden ReLU layers of width k
(40 -> k -> k -> 10). `--model=cnn`: the mCNN (conv3 -> BatchNorm -> ReLU -> max-pool 1, 2, 2, 2
at k, 2k, 4k, 8k channels, global max-pool, linear); `--formulation` picks the JAX side's
convolution (models.cnn; 'auto' is the backend's rule).

The JAX side is timed end to end from the member grid on: `train.member_grid` +
`train.init_members` ("init s", compiling the initialiser included), the first epoch of
`train.train` ("first epoch s": compiling the training program plus one epoch) and the remaining
epochs ("rest s"). The PyTorch side (`torch.set_num_threads(--threads)`) builds and trains each
model in turn ("torch s", everything). Loading the data is not timed. `torch/jax` is torch s over
jax total s. The final training loss (mean over seeds, last epoch) shows that both trained.

Compilation cache: with `--cache_dir=DIR` JAX's persistent compilation cache is on (every program
is cached). Run the command twice with the same DIR: the first run is cold (the header says the
directory was empty), the second warm (it says how many entries were there).

PyTorch is an optional dependency: `pip install -e .[bench]`, or a CPU-only build with
`pip install torch --index-url https://download.pytorch.org/whl/cpu`.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import math
import os
import platform
import sys
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import data as data_lib
from unlearn_jax import train

NUM_CLASSES, DEPTH, MOMENTUM = 10, 2, 0.9
MODELS = ("mlp", "cnn")
TORCH_MISSING = ("PyTorch is not installed, so the PyTorch baseline cannot run. Install it with "
                 "`pip install -e .[bench]` (or a CPU-only build: `pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu`), or pass --frameworks=jax "
                 "to time the JAX side alone.")


@dataclasses.dataclass
class Row:
  width: int
  seeds: int
  steps: int
  jax_init_s: Optional[float] = None
  jax_first_epoch_s: Optional[float] = None
  jax_rest_s: Optional[float] = None
  jax_loss: Optional[float] = None
  torch_s: Optional[float] = None
  torch_loss: Optional[float] = None

  @property
  def jax_total_s(self) -> Optional[float]:
    parts = (self.jax_init_s, self.jax_first_epoch_s, self.jax_rest_s)
    return None if None in parts else sum(parts)

  @property
  def ratio(self) -> Optional[float]:
    total = self.jax_total_s
    return None if total is None or self.torch_s is None else self.torch_s / total


@functools.lru_cache(maxsize=None)
def load_data(num_samples: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
  """MNIST-1D training arrays (generated offline): x (N, 40) float32, y (N,) int32; cached."""
  ds = data_lib.load("mnist1d", **({"num_samples": num_samples} if num_samples else {}))
  return np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train, np.int32)


def schedule(num_train: int, batch_size: int, steps: int) -> tuple[int, int]:
  """(epochs, steps per epoch): whole epochs reaching at least `steps` steps."""
  per_epoch = num_train // batch_size
  if per_epoch < 1:
    raise ValueError(f"batch size {batch_size} is larger than the {num_train} training examples.")
  return max(1, math.ceil(steps / per_epoch)), per_epoch


def model_kwargs(model: str, formulation: str = "auto") -> dict:
  return {"depth": DEPTH} if model == "mlp" else {"formulation": formulation}


def time_jax(x: np.ndarray, y: np.ndarray, width: int, seeds: int, epochs: int, batch_size: int,
             learning_rate: float, strategy: str = "auto", model_name: str = "mlp",
             formulation: str = "auto") -> dict:
  """Seconds of init, first epoch (with compilation) and the other epochs; final mean loss."""
  data = jax.block_until_ready({"x": jnp.asarray(x), "y": jnp.asarray(y)})
  pool = np.arange(len(y))
  start = time.perf_counter()
  members = train.member_grid(list(range(seeds)), [width], [learning_rate], [0.0])
  factory = train.make_optimizer("sgd", "constant", epochs * (len(y) // batch_size),
                                 momentum=MOMENTUM)
  # The init reads only the sample input's shape and dtype: a numpy slice, since slicing the
  # device array is an eager program with its own compile (30-80 ms cold).
  model, state, _ = train.init_members(model_name, members, NUM_CLASSES, x[:2], factory,
                                       **model_kwargs(model_name, formulation))
  jax.block_until_ready(state)
  initialised = time.perf_counter()
  marks = {}

  def after_epoch(epoch, state, metrics):
    del metrics
    if epoch == 1:
      jax.block_until_ready(state)
      marks["first_epoch"] = time.perf_counter()

  state, metrics = train.train(model, train.any_optimizer(factory), state, data, pool,
                               train.member_keys(members, 0), epochs=epochs,
                               batch_size=batch_size, augment=False,
                               strategy=train.resolve_strategy(strategy, model_name, width),
                               callback=after_epoch)
  jax.block_until_ready(state)
  end = time.perf_counter()
  return {"jax_init_s": initialised - start, "jax_first_epoch_s": marks["first_epoch"] - initialised,
          "jax_rest_s": end - marks["first_epoch"],
          "jax_loss": float(np.mean(np.asarray(metrics["loss"])))}


def torch_model(model_name: str, width: int, num_inputs: int):
  """The PyTorch twin of the JAX model: PyTorch's default initialisation, float32."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  if model_name == "mlp":
    return nn.Sequential(nn.Linear(num_inputs, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, NUM_CLASSES))
  layers, channels = [nn.Unflatten(1, (1, num_inputs))], 1
  for i, mult in enumerate((1, 2, 4, 8)):
    layers += [nn.Conv1d(channels, width * mult, 3, padding=1, bias=False),
               nn.BatchNorm1d(width * mult, momentum=0.1), nn.ReLU()]
    if i > 0:
      layers.append(nn.MaxPool1d(2))
    channels = width * mult
  layers += [nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(channels, NUM_CLASSES)]
  return nn.Sequential(*layers)


def time_torch(x: np.ndarray, y: np.ndarray, width: int, seeds: int, epochs: int,
               batch_size: int, learning_rate: float, threads: int,
               model_name: str = "mlp") -> dict:
  """Seconds to build and train the `seeds` models one after another; final mean loss."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(threads)
  inputs, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
  n, per_epoch = len(y), len(y) // batch_size
  losses = []
  start = time.perf_counter()
  for seed in range(seeds):
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    net = torch_model(model_name, width, x.shape[1])
    opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
      perm = torch.randperm(n, generator=order)
      epoch_loss = torch.zeros(())
      for i in range(per_epoch):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        loss = loss_fn(net(inputs[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        epoch_loss += loss.detach()
    losses.append(float(epoch_loss) / per_epoch)
  return {"torch_s": time.perf_counter() - start, "torch_loss": float(np.mean(losses))}


def torch_version() -> Optional[str]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch.__version__


def configure_cache(cache_dir: Optional[str]) -> str:
  """Turns on JAX's persistent compilation cache in `cache_dir`; says whether it starts cold."""
  if not cache_dir:
    return "off"
  cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
  os.makedirs(cache_dir, exist_ok=True)
  entries = len(os.listdir(cache_dir))
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  state = "cold (empty at start)" if entries == 0 else f"warm ({entries} entries at start)"
  return f"{cache_dir}, {state}"


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def _fmt(value: Optional[float], digits: int = 2) -> str:
  return "-" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: Sequence[Row], settings: dict) -> str:
  lines = [
      f"### JAX (library) vs PyTorch: MNIST-1D {settings['model'].upper()}, {settings['date']}",
      "",
      f"{settings['seeds']} seeds x width k, {settings['network']}, SGD lr {settings['learning_rate']} "
      f"momentum {MOMENTUM}, batch {settings['batch_size']}, {settings['num_train']} training "
      f"examples, {settings['epochs']} epochs of {settings['steps_per_epoch']} steps. "
      f"{settings['cpu']} ({settings['cpus']} CPUs); jax {jax.__version__} "
      f"({jax.default_backend()}), torch {settings['torch'] or 'not run'} "
      f"({settings['threads']} threads); JAX strategy {settings.get('strategy', 'auto')}; "
      f"compilation cache: {settings['cache']}.",
      "",
      "| width | seeds | steps | jax init s | jax first epoch s | jax rest s | jax total s "
      "| torch s | torch/jax | loss jax | loss torch |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r.width} | {r.seeds} | {r.steps} | {_fmt(r.jax_init_s)} | "
                 f"{_fmt(r.jax_first_epoch_s)} | {_fmt(r.jax_rest_s)} | {_fmt(r.jax_total_s)} | "
                 f"{_fmt(r.torch_s)} | {_fmt(r.ratio)} | {_fmt(r.jax_loss, 3)} | "
                 f"{_fmt(r.torch_loss, 3)} |")
  return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  ints = lambda s: [int(v) for v in s.split(",") if v]
  parser.add_argument("--model", default="mlp", choices=MODELS, help="network on both sides")
  parser.add_argument("--formulation", default="auto",
                      help="the JAX CNN's formulation: auto, flax or shifted (models.cnn)")
  parser.add_argument("--widths", type=ints, default=[64, 256], help="hidden widths k")
  parser.add_argument("--seeds", type=int, default=16, help="models (seeds) per width")
  parser.add_argument("--steps", type=int, default=2000, help="SGD steps per model (rounded up "
                      "to whole epochs)")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--learning_rate", type=float, default=0.05)
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--frameworks", default="jax,torch", help="jax, torch or both")
  parser.add_argument("--num_samples", type=int, default=None,
                      help="MNIST-1D examples to generate (80%% train; default: the standard 5000)")
  parser.add_argument("--cache_dir", default=None, help="JAX persistent compilation cache dir")
  parser.add_argument("--strategy", default="auto",
                      help="JAX execution strategy: 'auto' (on CPU the members vmapped in 2 "
                           "chunks side by side), 'auto,chunks=1' (one vmapped program) or "
                           "'<member_chunk>,<scan|host>', e.g. '4,scan' (chunks of 4 members)")
  parser.add_argument("--out", default=None, help="append the markdown table to this file")
  args = parser.parse_args(argv)
  args.frameworks = {f.strip() for f in args.frameworks.split(",") if f.strip()}
  if not args.frameworks or not args.frameworks <= {"jax", "torch"}:
    parser.error(f"--frameworks takes jax, torch or jax,torch; got {sorted(args.frameworks)}.")
  if not args.widths or min(args.widths) < 1 or args.seeds < 1 or args.steps < 1:
    parser.error("--widths, --seeds and --steps must be positive.")
  return args


def main(argv: Optional[Sequence[str]] = None) -> tuple[list[Row], str]:
  args = parse_args(argv)
  torch_ver = torch_version()
  if "torch" in args.frameworks and torch_ver is None:
    print(TORCH_MISSING, file=sys.stderr)
    raise SystemExit(2)
  cache = configure_cache(args.cache_dir)
  x, y = load_data(args.num_samples)
  epochs, per_epoch = schedule(len(y), args.batch_size, args.steps)
  rows = []
  for width in args.widths:
    row = Row(width, args.seeds, epochs * per_epoch)
    common = (x, y, width, args.seeds, epochs, args.batch_size, args.learning_rate)
    if "jax" in args.frameworks:
      for name, value in time_jax(*common, args.strategy, args.model, args.formulation).items():
        setattr(row, name, value)
    if "torch" in args.frameworks:
      for name, value in time_torch(*common, args.threads, args.model).items():
        setattr(row, name, value)
    rows.append(row)
    print(f"width {width}: jax total {_fmt(row.jax_total_s)} s, torch {_fmt(row.torch_s)} s",
          file=sys.stderr, flush=True)
  settings = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "seeds": args.seeds,
              "learning_rate": args.learning_rate, "batch_size": args.batch_size,
              "num_train": len(y), "epochs": epochs, "steps_per_epoch": per_epoch,
              "cpu": _cpu_model(), "cpus": os.cpu_count(), "threads": args.threads,
              "torch": torch_ver if "torch" in args.frameworks else None, "cache": cache,
              "strategy": args.strategy, "model": args.model,
              "network": ("MLP 40-k-k-10" if args.model == "mlp" else
                          f"mCNN k-2k-4k-8k (JAX formulation {args.formulation})")}
  table = to_markdown(rows, settings)
  print(table)
  if args.out:
    with open(args.out, "a") as f:
      f.write(table + "\n")
  return rows, table


if __name__ == "__main__":
  main()
