"""Training throughput per execution strategy, and the cost of padding widths into one bucket.

A case trains S members of one model family for one epoch-sized call of `train.Driver` (T steps
of `batch_size` per member) and reports examples/s in total and per member, compile time and
achieved FLOP/s. The members differ only in seed, so every strategy does the same work:
  vmap-*    all S members in one vmapped program;
  loop-*    one member at a time without vmap (XLA:CPU keeps plain convolutions);
  chunkC-*  vmapped chunks of C members;
  *-cN      the members in N chunks, each its own call (side by side on CPU);
  *-scan    the T steps inside one compiled `lax.scan`;  *-host   a Python loop of compiled steps;
  auto      what `train.auto_strategy` picks for this backend, model and width.
Every case runs at one compute dtype (the model kwarg `compute_dtype`): 'float32', or 'bfloat16'
activations with float32 parameters, optimizer state and loss (mixed precision).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from unlearn_jax import data as data_lib
from unlearn_jax import compile_cache, models, train
from benchmarks import timing

LEARNING_RATE, WEIGHT_DECAY = 0.05, 5e-4


@dataclasses.dataclass(frozen=True)
class Workload:
  """A model family on a dataset (data_kwargs go to `unlearn_jax.data.load`)."""
  model: str
  dataset: str
  data_kwargs: tuple[tuple[str, Any], ...] = ()


def mnist1d(model: str, num_samples: Optional[int] = None) -> Workload:
  """A model on MNIST-1D (num_samples: fewer generated examples for quick runs; 80% train)."""
  return Workload(model, "mnist1d", (("num_samples", num_samples),) if num_samples else ())


def synthetic_images(image_size: int, num_train: int, num_classes: int = 10) -> Workload:
  """preact_resnet18 on synthetic CIFAR-shaped uint8 images (num_train sets steps per call)."""
  return Workload("preact_resnet18", "synthetic",
                  (("image_size", image_size), ("num_train", num_train), ("num_test", 16),
                   ("num_classes", num_classes)))


@functools.lru_cache(maxsize=None)
def load(workload: Workload) -> tuple[dict, int]:
  """({'x', 'y'} train arrays on the device, num_classes); cached (MNIST-1D takes seconds)."""
  ds = data_lib.load(workload.dataset, **dict(workload.data_kwargs))
  return {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}, ds.num_classes


def parse_strategy(name: str, model: str, width: float) -> train.Strategy:
  """'vmap-scan' | 'loop-host' | 'chunk4-scan' | 'auto', each optionally followed by '-c<N>'
  (`Strategy.chunks`, e.g. 'vmap-scan-c2') -> train.Strategy."""
  base, options = name, {}
  head, _, last = base.rpartition("-")
  if re.fullmatch(r"c\d+", last):
    base, options["chunks"] = head, int(last[1:])
  if base == "auto":
    return dataclasses.replace(train.auto_strategy(model, width), **options)
  members, _, steps = base.partition("-")
  try:
    chunk = {"vmap": 0, "loop": 1}.get(members)
    if chunk is None:
      chunk = int(members.removeprefix("chunk"))
    return train.Strategy(chunk, steps, **options)
  except ValueError as e:
    raise ValueError(f"Bad strategy name {name!r}; use auto, vmap-<scan|host>, "
                     "loop-<scan|host> or chunk<C>-<scan|host>, optionally followed by "
                     "-c<N>.") from e


def strategy_name(strategy: train.Strategy) -> str:
  members = {0: "vmap", 1: "loop"}.get(strategy.member_chunk, f"chunk{strategy.member_chunk}")
  return f"{members}-{strategy.steps}" + (f"-c{strategy.chunks}" if strategy.chunks > 1 else "")


def member_list(seeds: int, widths: Sequence[float]) -> tuple[train.Member, ...]:
  return tuple(train.member_grid(list(range(seeds)), list(widths), [LEARNING_RATE],
                                 [WEIGHT_DECAY]))


def init_variables(model_name: str, members: Sequence[train.Member], num_classes: int,
                   sample_x, **model_kwargs) -> tuple[Any, Any]:
  """(widest module, member-stacked padded variables), shaped as `train.init_members` makes them.

  Same initialisers and padding as the library, but each width's members are initialised by one
  jitted vmap with RBG keys instead of one eager threefry `init` per member: eager init compiles
  every small op on first use, and threefry random bits compile slowly on CPU (a ResNet-18 init
  took 29 s vs 4 s with RBG keys here) -- more than the benchmarked work at quick sizes. Timing
  needs weights of the right shape and scale, not the library's exact random streams.
  model_kwargs (e.g. compute_dtype) go to `models.get`.
  """
  widest = max(m.width for m in members)
  kwargs = tuple(sorted(model_kwargs.items()))
  parts = []
  for width, group in itertools.groupby(members, key=lambda m: m.width):
    keys = jnp.stack([jax.random.key(m.seed, impl="unsafe_rbg") for m in group])
    init = _padded_init(model_name, width, widest, num_classes,
                        jax.ShapeDtypeStruct(sample_x.shape, sample_x.dtype), kwargs)
    parts.append(init(keys))
  return (models.get(model_name, widest, num_classes, **model_kwargs),
          jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts))


def _padded_init(model_name: str, width: float, widest: float, num_classes: int, sample,
                 model_kwargs: tuple = ()):
  """jit(vmap(init at `width`, zero-padded to `widest`)), cached so cases share compiles."""
  def build():
    narrow = models.get(model_name, width, num_classes, **dict(model_kwargs))
    wide = models.get(model_name, widest, num_classes, **dict(model_kwargs))
    sample_x = jnp.zeros(sample.shape, sample.dtype)
    init = lambda module, key: train.Variables.from_flax(module.init(key, sample_x, train=False))
    wide_shapes = jax.eval_shape(lambda: init(wide, jax.random.key(0)))
    return jax.jit(jax.vmap(lambda key: models.pad_variables(init(narrow, key), wide_shapes)))
  return compile_cache.cached(("bench_padded_init", model_name, width, widest, num_classes,
                               sample, model_kwargs), build)


@dataclasses.dataclass
class Setup:
  """Everything one epoch-sized Driver call needs; built once per (workload, members, batch)."""
  data: dict
  state: train.TrainState
  step_fn: Any
  keys: jax.Array
  batches: jax.Array   # (S, T, batch_size) indices

  @property
  def steps(self) -> int:
    return int(self.batches.shape[1])

  def first_member_step_args(self) -> tuple:
    """`step_fn`'s arguments for member 0's first step."""
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)
    return first(self.state), self.data, self.batches[0, 0], self.keys[0]

  def flops_per_step(self) -> Optional[float]:
    """FLOPs of one step of member 0 alone (unpadded when all members share its width)."""
    return timing.flops(self.step_fn, *self.first_member_step_args())


@functools.lru_cache(maxsize=32)
def setup(workload: Workload, members: tuple[train.Member, ...], batch_size: int,
          compute_dtype: str = "float32") -> Setup:
  data, num_classes = load(workload)
  pool = jnp.arange(data["y"].shape[0], dtype=jnp.int32)
  factory = train.make_optimizer("sgd", "cosine", total_steps=max(len(pool) // batch_size, 1))
  model, variables = init_variables(workload.model, members, num_classes, data["x"][:2],
                                    compute_dtype=compute_dtype)
  lrs = jnp.asarray([m.learning_rate for m in members], jnp.float32)
  wds = jnp.asarray([m.weight_decay for m in members], jnp.float32)

  def init_one(params, batch_stats, lr, wd):
    tx = factory(learning_rate=lr, weight_decay=wd)
    return train.TrainState(jnp.zeros((), jnp.int32), params, batch_stats, tx.init(params))

  state = jax.jit(jax.vmap(init_one))(variables.params, variables.batch_stats, lrs, wds)
  step_fn = train.make_train_step(model, train.any_optimizer(factory), data["x"].ndim == 4)
  keys = train.member_keys(members, 0)
  return Setup(data, state, step_fn, keys, train.epoch_batches(keys, pool, batch_size, 0))


def time_epoch(s: Setup, strategy: train.Strategy, timing_kw: dict) -> timing.Timing:
  """Times epoch-sized Driver calls; a fresh Driver compiles afresh, so first call = compile."""
  driver = train.Driver(s.step_fn, strategy)
  result, _ = timing.measure(lambda carry: driver(carry[0], s.data, s.batches, s.keys),
                             (s.state, None), **timing_kw)
  return result


def throughput(workload: Workload, widths: Sequence[float], members: int, batch_size: int,
               strategies: Sequence[str], timing_kw: dict, peak: Optional[float],
               compute_dtype: str = "float32") -> list[dict]:
  """One row per (width, strategy): S members of one width trained for one epoch-sized call.

  compute_dtype: the models' activation dtype ('float32' or 'bfloat16'); `peak` should be the
  reference peak of that dtype (benchmarks/run.py passes the bf16 peak for bfloat16 on GPUs).
  """
  rows = []
  for width in widths:
    s = setup(workload, member_list(members, [width]), batch_size, compute_dtype)
    flop_count = s.flops_per_step()
    examples = members * s.steps * batch_size
    for name in strategies:
      strategy = parse_strategy(name, workload.model, width)
      result = time_epoch(s, strategy, timing_kw)
      rows.append({
          "benchmark": "train", "model": workload.model, "dataset": workload.dataset,
          "width": width, "members": members, "batch_size": batch_size,
          "steps_per_call": s.steps, "strategy": strategy_name(strategy),
          "compute_dtype": compute_dtype, "reference_peak_flops": peak,
          "rate": examples / result.steady_s, "unit": "examples/s",
          "rate_per_member": examples / members / result.steady_s,
          "flops_per_step_member": flop_count, **result.as_dict(),
          **timing.flop_rates(flop_count and flop_count * members * s.steps, result.steady_s,
                              peak),
      })
  return rows


def padding_cost(workload: Workload, widths: Sequence[float], seeds: int, batch_size: int,
                 strategy_spec: str, timing_kw: dict, peak: Optional[float]) -> list[dict]:
  """A bucket of widths vmapped at the widest shape vs each width trained alone.

  Both rows count the same useful work (each member at its own width), so their examples/s and
  FLOP/s compare directly; `slowdown_vs_alone` > 1 is the price of sharing one program.
  """
  widths = sorted(widths)
  strategy = parse_strategy(strategy_spec, workload.model, widths[-1])
  alone_setups = [setup(workload, member_list(seeds, [w]), batch_size) for w in widths]
  flop_counts = [s.flops_per_step() for s in alone_setups]
  bucket_setup = setup(workload, member_list(seeds, widths), batch_size)
  bucket = time_epoch(bucket_setup, strategy, timing_kw)
  alone = [time_epoch(s, parse_strategy(strategy_spec, workload.model, w), timing_kw)
           for s, w in zip(alone_setups, widths)]
  steps = bucket_setup.steps
  useful = sum(flop_counts) * seeds * steps if all(flop_counts) else None
  executed = flop_counts[-1] * seeds * len(widths) * steps if flop_counts[-1] else None
  members = len(widths) * seeds
  examples = members * steps * batch_size
  alone_steady = sum(t.steady_s for t in alone)
  rows = []
  for label, steady, first in (("bucket-padded", bucket.steady_s, bucket.first_s),
                               ("each-alone", alone_steady, sum(t.first_s for t in alone))):
    rows.append({
        "benchmark": "padding", "model": workload.model, "dataset": workload.dataset,
        "width": widths[-1], "widths": list(widths), "members": members,
        "batch_size": batch_size, "steps_per_call": steps,
        "strategy": f"{strategy_name(strategy)} {label}",
        "rate": examples / steady, "unit": "examples/s",
        "rate_per_member": examples / members / steady,
        "first_call_s": first, "steady_s": steady, "compile_s": max(first - steady, 0.0),
        "slowdown_vs_alone": steady / alone_steady,
        "useful_flops_fraction": (1.0 if label == "each-alone" else
                                  useful / executed if useful and executed else None),
        # Useful FLOPs in both rows: the padded zeros are work the bucket wastes.
        **timing.flop_rates(useful, steady, peak),
    })
  return rows
