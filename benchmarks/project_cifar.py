r"""Projects the run time of the CIFAR-10 ResNet-18 sweep from short measured slices of its stages.

    python -m benchmarks.project_cifar --out=benchmarks/results/h100_cifar_projection.md
    python -m benchmarks.project_cifar --out=/tmp/projection.md --quick   # CPU, tiny: the machinery

Runs the pipeline of `configs/cifar10_resnet18.py` (`get_config()`; `--config-arg=float32` for
its float32 variant) on synthetic CIFAR-shaped data made in memory (50,000 train images 32x32x3
uint8 in 10 classes, split as the config says: 20% validation, 200 forget examples), so no
dataset is needed. Per width bucket (`train.width_buckets`, grouped as experiments/run.py does)
it times:

  * training: a few steps of the bucket's members (seeds x widths, the config's batch size and
    augmentation, the strategy `train.resolve_strategy(config.strategy, ...)` picks) after a
    first call that compiles; the originals and the retrained references run the same program,
    so one measurement serves both stages;
  * unlearning: every method of `config.unlearn.methods` but 'retrain', with its grid and epochs
    as the sweep takes them (`experiments.stages.unlearn.method_with_config`) and the real
    member count (originals x grid points), forgetting the full forget set with the retain set
    cut to a few batches, through `unlearn_jax.methods.unlearn`: a call of 1 epoch compiles,
    then a call of 1 epoch and one of 2 epochs are timed; their difference is the second epoch,
    the rest is once-per-run setup (SalUn's saliency pass). SSD has no epochs: its second call
    is timed.

Each stage of the full run is projected as measured seconds per step x the full run's steps
(+ the setup): training takes epochs x floor(pool / batch) steps, for the originals (train
split) and again for the retrained references (retain set); a gradient method takes, in every
epoch, ceil(pool / batch) steps of each phase that runs in that epoch (SCRUB's max pass only
while epoch < msteps for some grid point); SSD one pass over the forget and the reference set.
A step is one optimizer step of every member of the bucket. The markdown table (stage, bucket,
members, measured s/step, projected minutes, ...) and the total in hours go to --out, the same as
JSON next to it; both are rewritten after every slice, so a run stopped early keeps what it has.

Slices run in order of importance: training of every bucket (widest first), then every method on
the widest bucket, then the other buckets. Past `--budget-s` (default 180 s on accelerators,
counted from the start) no new slice starts, and a slice left out is estimated (column `how`):
from the same method on another bucket, scaled by the two buckets' training seconds per
member-step; a method measured nowhere from the training cost times the mean unlearning /
training cost ratio of the methods that were measured.

Not projected: evaluation, hyperparameter selection, decision regions, the optional many-model
protocols and the report; data loading; compilation (its measured seconds are listed, paid once
per bucket and program in a real run); bad_teacher's random-teacher initialisation. One device:
the sweep shards vmapped members over several devices, which this does not.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import statistics
import sys
import time
from typing import Callable, Mapping, Optional, Sequence

from experiments.layout import bucket_tag   # the sweep's own bucket names, e.g. '16-32'

# (stage, the pool it trains on) of the two training stages (experiments/stages/train.py).
TRAIN_STAGES = (("train original", "train"), ("train retrained", "retain"))
# --quick: the :smoke config's one bucket and two methods that cover both kinds (a gated
# two-phase gradient method with a teacher, and the training-free one), so that it stays well
# under a minute on CPU, where every ResNet-18 program compiles for seconds.
QUICK_METHODS = ("scrub", "ssd")


# ---- The projection arithmetic (pure) ------------------------------------------------------
def train_steps(epochs: int, pool_size: int, batch_size: int) -> int:
  """Steps of a training stage: every epoch drops its last partial batch (train.epoch_batches)."""
  return epochs * (pool_size // batch_size)


def phase_runs(gate_values: Optional[Sequence[float]], epoch: int) -> bool:
  """Whether a phase runs in `epoch` (0-based): ungated (None), or gated by a hyperparameter m
  (SCRUB's msteps) with epoch < m for at least one member."""
  return gate_values is None or any(epoch < m for m in gate_values)


def gradient_steps(phases: Sequence[tuple[str, Optional[Sequence[float]]]],
                   pool_sizes: Mapping[str, int], batch_size: int, epochs: Sequence[int]) -> int:
  """Steps of a gradient method in `epochs` (0-based epoch indices).

  phases: (pool, gate values or None) per phase; a phase takes ceil(pool / batch_size) steps
    (methods/gradient.py tops up its last batch) in every epoch it runs for some member.
  """
  per_phase = [math.ceil(pool_sizes[pool] / batch_size) for pool, _ in phases]
  return sum(steps for e in epochs for (_, gate), steps in zip(phases, per_phase)
             if phase_runs(gate, e))


def ssd_steps(forget_size: int, retain_size: int, batch_size: int, reference_set: str) -> int:
  """Gradient passes of SSD: ordered batches of the forget set and of the reference set
  ('train' = retain + forget, or 'retain')."""
  reference = retain_size + (forget_size if reference_set == "train" else 0)
  return math.ceil(forget_size / batch_size) + math.ceil(reference / batch_size)


@dataclasses.dataclass(frozen=True)
class Slice:
  """One stage of one bucket: what was timed, and how many steps the full run takes.

  seconds: wall seconds of `steps` timed steps (every member of the bucket, no compilation);
  full_steps: the full run's steps; setup_s: once-per-run work outside the steps, added as is;
  compile_s: the first call's extra seconds; how: 'measured' or how it was estimated.
  """
  stage: str
  bucket: str
  members: int
  seconds: Optional[float]
  steps: int
  full_steps: int
  setup_s: float = 0.0
  compile_s: Optional[float] = None
  how: str = "measured"

  @property
  def s_per_step(self) -> Optional[float]:
    return None if self.seconds is None or not self.steps else self.seconds / self.steps

  @property
  def projected_s(self) -> Optional[float]:
    rate = self.s_per_step
    return None if rate is None else rate * self.full_steps + self.setup_s


def project(slices: Sequence[Slice]) -> dict:
  """Totals in hours (all, training, unlearning), how many were estimated, which are missing."""
  known = [s for s in slices if s.projected_s is not None]
  hours = lambda ss: sum(s.projected_s for s in ss) / 3600.0
  return {"total_h": hours(known),
          "train_h": hours([s for s in known if s.stage.startswith("train")]),
          "unlearn_h": hours([s for s in known if s.stage.startswith("unlearn")]),
          "compile_s": sum(s.compile_s or 0.0 for s in slices),
          "estimated": sum(s.how != "measured" for s in known),
          "missing": [f"{s.stage} {s.bucket}" for s in slices if s.projected_s is None]}


def estimate(stage: str, bucket: str, members: int, steps: int, full_steps: int,
             measured: Sequence[Slice], train_cost: Mapping[str, float]) -> Slice:
  """A slice that was not measured, from those that were.

  Costs are seconds per member-step; `train_cost[bucket]` is a bucket's training cost. The same
  method on the nearest measured bucket is scaled by the ratio of the two buckets' training
  costs; a method measured on no bucket (with training measured here) takes the training cost
  times the mean unlearning / training cost ratio of every measured unlearning slice.
  Otherwise s/step stays unknown.
  """
  def width(tag):
    return max(float(w) for w in tag.split("-"))

  def cost(s):
    return s.s_per_step / s.members

  def make(s_per_step, setup_s, how):
    return Slice(stage, bucket, members, s_per_step * steps, steps, full_steps, setup_s,
                 how=how)

  unknown = Slice(stage, bucket, members, None, steps, full_steps, how="not measured")
  if bucket not in train_cost:
    return unknown
  same = sorted((s for s in measured if s.stage == stage and s.bucket in train_cost),
                key=lambda s: (abs(math.log(width(s.bucket) / width(bucket))), s.bucket))
  if same:
    s = same[0]
    scale = train_cost[bucket] / train_cost[s.bucket]
    return make(cost(s) * scale * members, s.setup_s * scale, f"scaled from bucket {s.bucket}")
  others = [s for s in measured if s.stage.startswith("unlearn") and s.bucket in train_cost]
  if not others or not stage.startswith("unlearn"):
    return unknown
  ratio = statistics.mean(cost(s) / train_cost[s.bucket] for s in others)
  return make(train_cost[bucket] * ratio * members, 0.0,
              f"training cost x mean unlearning ratio ({ratio:.2f})")


# ---- Output --------------------------------------------------------------------------------
def _num(value: Optional[float], digits: int = 3) -> str:
  return "-" if value is None else f"{value:.{digits}g}"


def markdown(header: Mapping, slices: Sequence[Slice], complete: bool) -> str:
  totals = project(slices)
  lines = [f"# {header['title']}", "", header["description"], "",
           "| stage | bucket | members | measured s/step | timed steps | full steps | setup s "
           "| compile s | projected min | how |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
  for s in slices:
    minutes = None if s.projected_s is None else s.projected_s / 60
    lines.append(f"| {s.stage} | {s.bucket} | {s.members} | {_num(s.s_per_step)} | {s.steps} | "
                 f"{s.full_steps} | {_num(s.setup_s)} | {_num(s.compile_s)} | "
                 f"{_num(minutes)} | {s.how} |")
  lines += ["", f"**Total projected: {totals['total_h']:.2f} hours** "
            f"({totals['total_h'] * 60:.3g} min: training {totals['train_h']:.2f} h, unlearning "
            f"{totals['unlearn_h']:.2f} h). Not included: "
            "evaluation, selection, decision regions, the report, and compilation (measured "
            f"here: {totals['compile_s']:.0f} s in all)."]
  if totals["estimated"]:
    lines.append(f"\n{totals['estimated']} slice(s) were not measured within the time budget; "
                 "they are estimated as the column how says.")
  if totals["missing"]:
    lines.append(f"\nNot projected (not measured, nothing to estimate from): "
                 f"{', '.join(totals['missing'])}; the total leaves them out.")
  for error in header.get("errors", []):
    lines.append(f"\nERROR (estimated instead) in {error}")
  if not complete:
    lines.append("\nINCOMPLETE: the run stopped before every slice was done.")
  return "\n".join(lines) + "\n"


def write(out: str, header: Mapping, slices: Sequence[Slice], complete: bool) -> str:
  """Writes the markdown to `out` and the JSON next to it; returns the markdown."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  text = markdown(header, slices, complete)
  doc = dict(header, complete=complete, totals=project(slices),
             slices=[dict(dataclasses.asdict(s), s_per_step=s.s_per_step,
                          projected_s=s.projected_s) for s in slices])
  for path, content in ((out, text),
                        (os.path.splitext(out)[0] + ".json", json.dumps(doc, indent=1))):
    with open(path + ".tmp", "w") as f:
      f.write(content)
    os.replace(path + ".tmp", path)
  return text


# ---- Measuring -----------------------------------------------------------------------------
def synthetic_cifar(num_train: int = 50_000, num_test: int = 10_000, image_size: int = 32,
                    num_classes: int = 10, seed: int = 0):
  """CIFAR-shaped uint8 images: a class mean plus noise (learnable, made in about a second)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from unlearn_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  means = rng.integers(64, 192, size=(num_classes, image_size, image_size, 3), dtype=np.int16)

  def draw(n):
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    noise = rng.integers(-48, 49, size=(n, image_size, image_size, 3), dtype=np.int16)
    return (means[y] + noise).clip(0, 255).astype(np.uint8), y

  (x_train, y_train), (x_test, y_test) = draw(num_train), draw(num_test)
  return data_lib.Dataset("synthetic", x_train, y_train, x_test, y_test, num_classes)


class Projector:
  """Measures the slices of one config; `run()` returns every slice in table order."""

  def __init__(self, config, dataset, *, train_steps_per_slice: int, retain_batches: int,
               methods: Sequence[str], deadline: Optional[float], progress: Callable):
    # pylint: disable=g-import-not-at-top
    import jax
    import jax.numpy as jnp
    import numpy as np
    from experiments.stages.unlearn import method_with_config
    from unlearn_jax import data as data_lib
    from unlearn_jax import methods as methods_lib
    from unlearn_jax import train as train_lib
    # pylint: enable=g-import-not-at-top
    self.jax, self.np, self.lib, self.methods_lib = jax, np, train_lib, methods_lib
    self.config, self.progress, self.deadline = config, progress, deadline
    self.train_steps_per_slice, self.retain_batches = train_steps_per_slice, retain_batches
    d = config.dataset
    self.splits = data_lib.make_splits(
        dataset, val_fraction=d.val_fraction, forget_size=d.forget_size,
        forget_mode=d.forget_mode, forget_classes=tuple(d.forget_classes),
        label_noise=d.label_noise, seed=d.split_seed)
    data_lib.check_sizes(self.splits, train_batch_size=config.train.batch_size,
                         unlearn_batch_size=config.unlearn.batch_size)
    self.data = {"x": jnp.asarray(self.splits.x_train), "y": jnp.asarray(self.splits.y_train)}
    self.sample_x = jnp.asarray(self.splits.x_train[:2])
    self.model_kwargs = dict(config.model.kwargs)
    structure = lambda w: train_lib.variable_structure(
        config.model.name, w, self.splits.num_classes, self.sample_x, **self.model_kwargs)
    self.buckets = train_lib.width_buckets(config.widths, config.bucket_max_ratio, structure)
    self.methods = {m: method_with_config(config, m) for m in methods}   # (method, grid, epochs)
    self.sizes = {"train": len(self.splits.y_train), "retain": len(self.splits.retain_idx),
                  "forget": len(self.splits.forget_idx),
                  "retain_slice": min(retain_batches * config.unlearn.batch_size,
                                      len(self.splits.retain_idx))}
    self._buckets: dict = {}   # widths -> initialised bucket (a few hundred MB at most)
    self.errors: list[str] = []

  def over_budget(self) -> bool:
    return self.deadline is not None and time.perf_counter() > self.deadline

  # -- steps
  def members(self, widths) -> list:
    t = self.config.train
    return self.lib.member_grid(list(self.config.seeds), list(widths), [t.learning_rate],
                                [t.weight_decay])

  def unlearn_steps(self, name: str, retain_size: int, epochs: Sequence[int]) -> int:
    """Steps of method `name` over its grid in `epochs` (SSD: its passes, whatever epochs)."""
    method, grid, _ = self.methods[name]
    bs = self.config.unlearn.batch_size
    if method.kind == "ssd":
      return ssd_steps(self.sizes["forget"], retain_size, bs, method.options["reference_set"])
    points = self.methods_lib.grid_points(grid)
    phases = [(p.pool, None if p.while_epoch_below is None else
               [q.get(p.while_epoch_below, method.defaults[p.while_epoch_below])
                for q in points]) for p in method.phases]
    return gradient_steps(phases, {"retain": retain_size, "forget": self.sizes["forget"]}, bs,
                          epochs)

  def full_steps(self, stage: str) -> int:
    t = self.config.train
    if stage.startswith("train"):
      return train_steps(t.epochs, self.sizes[dict(TRAIN_STAGES)[stage]], t.batch_size)
    name = stage.removeprefix("unlearn ")
    return self.unlearn_steps(name, self.sizes["retain"], range(self.methods[name][2]))

  def slice_steps(self, stage: str) -> int:
    """Steps of a stage's timed part: training steps, SSD's passes, else the second epoch."""
    if stage.startswith("train"):
      return self.train_steps_per_slice
    return self.unlearn_steps(stage.removeprefix("unlearn "), self.sizes["retain_slice"], [1])

  def stage_members(self, stage: str, widths) -> int:
    num = len(self.members(widths))
    if stage.startswith("train"):
      return num
    _, grid, _ = self.methods[stage.removeprefix("unlearn ")]
    return num * len(self.methods_lib.grid_points(grid))

  # -- measurements
  def bucket(self, widths):
    """(module, state, mask, members, strategy, tx factory) of a bucket, initialised as the
    train stage does it (once per bucket)."""
    if widths not in self._buckets:
      c, t, lib = self.config, self.config.train, self.lib
      members = self.members(widths)
      tx_factory = lib.make_optimizer(
          t.optimizer, t.schedule, t.epochs * (self.sizes["train"] // t.batch_size),
          momentum=t.momentum)
      model, state, mask = lib.init_members(c.model.name, members, self.splits.num_classes,
                                            self.sample_x, tx_factory, **self.model_kwargs)
      strategy = lib.resolve_strategy(c.strategy, c.model.name, max(widths), shares_cores=True)
      self._buckets[widths] = (model, state, mask, members, strategy, tx_factory)
    return self._buckets[widths]

  def measure_training(self, widths) -> list[Slice]:
    """Both training stages of a bucket from one timing (median of 2 calls after the first)."""
    from benchmarks import timing  # pylint: disable=g-import-not-at-top
    t, lib = self.config.train, self.lib
    model, state, _, members, strategy, tx_factory = self.bucket(widths)
    driver = lib.Driver(lib.make_train_step(model, lib.any_optimizer(tx_factory), t.augment),
                        strategy)
    keys = lib.member_keys(members, 0)
    batches = lib.epoch_batches(keys, self.np.arange(self.sizes["train"]), t.batch_size, 0)
    batches = batches[:, :self.train_steps_per_slice]
    steps = int(batches.shape[1])
    result, _ = timing.measure(lambda carry: driver(carry[0], self.data, batches, keys),
                               (state, None), min_repeats=2, max_repeats=2, min_time_s=0.0)
    self.progress(f"train widths {bucket_tag(widths)}: {len(members)} members, {strategy}, "
                  f"compile {result.compile_s:.1f} s, {result.steady_s:.3f} s per {steps} steps")
    # One program serves both stages: its compilation is listed once.
    return [Slice(stage, bucket_tag(widths), len(members), result.steady_s, steps,
                  self.full_steps(stage), compile_s=result.compile_s if i == 0 else None)
            for i, (stage, _) in enumerate(TRAIN_STAGES)]

  def measure_unlearning(self, name: str, widths) -> Slice:
    c, lib, ml = self.config, self.lib, self.methods_lib
    model, state, mask, members, strategy, _ = self.bucket(widths)
    method, grid, _ = self.methods[name]
    expanded, hparams, points = ml.expand_grid(state.variables, grid)
    reps = len(points)
    inputs = ml.MemberInputs(
        ml.repeat_members(lib.member_keys(members, 2), reps), hparams,
        ml.repeat_members(mask, reps),
        # bad_teacher's random teacher: any variables of the right shapes do the same work.
        expanded if method.name == "bad_teacher" else None)
    retain = self.np.asarray(self.splits.retain_idx)[:self.sizes["retain_slice"]]
    task = ml.ForgetTask(self.data, retain, self.splits.forget_idx)

    def call(epochs):
      start = time.perf_counter()
      out, _ = ml.unlearn(method, model, expanded, task, inputs,
                          ml.RunSettings(epochs=epochs, batch_size=c.unlearn.batch_size,
                                         strategy=strategy, augment=c.train.augment))
      self.jax.block_until_ready(out)
      return time.perf_counter() - start

    stage, tag = f"unlearn {name}", bucket_tag(widths)
    first, one = call(1), call(1)         # the first call compiles
    steps = self.slice_steps(stage)
    if method.kind == "ssd":
      seconds, setup_s = one, 0.0
    else:
      two = call(2)
      steps_e0 = self.unlearn_steps(name, self.sizes["retain_slice"], [0])
      seconds = two - one                 # the second epoch (index 1)
      if seconds <= 0:   # timing noise swamped the difference: no setup, steps take it all
        seconds, setup_s = one * steps / max(steps_e0, 1), 0.0
      else:
        setup_s = max(one - seconds / max(steps, 1) * steps_e0, 0.0)
    result = Slice(stage, tag, len(members) * reps, seconds, steps, self.full_steps(stage),
                   setup_s, compile_s=max(first - one, 0.0))
    self.progress(f"{stage} widths {tag}: {result.members} members, compile "
                  f"{result.compile_s:.1f} s, {_num(result.s_per_step)} s/step, setup "
                  f"{setup_s:.2f} s")
    return result

  # -- the plan
  def table_keys(self) -> list[tuple[str, str]]:
    """(stage, bucket) in table order: buckets narrowest first, training then each method."""
    return [(stage, bucket_tag(w)) for w in sorted(self.buckets, key=max)
            for stage in [s for s, _ in TRAIN_STAGES] + [f"unlearn {m}" for m in self.methods]]

  def current(self, measured: Mapping[tuple[str, str], Slice]) -> list[Slice]:
    """Every slice in table order: measured, or estimated from those measured."""
    train_cost = {tag: s.s_per_step / s.members
                  for (stage, tag), s in measured.items() if stage == "train original"}
    widths = {bucket_tag(w): w for w in self.buckets}
    return [measured.get((stage, tag)) or estimate(
        stage, tag, self.stage_members(stage, widths[tag]), self.slice_steps(stage),
        self.full_steps(stage), list(measured.values()), train_cost)
            for stage, tag in self.table_keys()]

  def run(self, on_update: Callable[[list[Slice]], None]) -> list[Slice]:
    """Measures in order of importance until done or past the deadline."""
    measured: dict[tuple[str, str], Slice] = {}
    widest_first = sorted(self.buckets, key=max, reverse=True)
    plan = [("train", w) for w in widest_first] + [(m, w) for w in widest_first
                                                   for m in self.methods]
    on_update(self.current(measured))   # the table's rows from the start, none measured yet
    for i, (what, widths) in enumerate(plan):
      if self.over_budget():
        self.progress(f"time budget spent; the last {len(plan) - i} measurements are "
                      "estimated instead")
        break
      tag = bucket_tag(widths)
      if what != "train" and ("train original", tag) not in measured:
        continue   # nothing to compare with: its training failed
      try:
        if what == "train":
          for s in self.measure_training(widths):
            measured[(s.stage, tag)] = s
        else:
          measured[(f"unlearn {what}", tag)] = self.measure_unlearning(what, widths)
      except Exception as e:  # pylint: disable=broad-except
        # One failing slice (e.g. out of device memory) must not cost the others; it is
        # estimated like a slice past the budget, and the error is listed.
        self.errors.append(f"{what} widths {tag}: {type(e).__name__}: {str(e)[:300]}")
        self.progress(f"ERROR {self.errors[-1]}")
      on_update(self.current(measured))
    self._buckets.clear()
    return self.current(measured)


def main(argv=None) -> int:
  start = time.perf_counter()
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="markdown output (the JSON goes next to it)")
  parser.add_argument("--quick", action="store_true",
                      help="the config's :smoke sizes, methods scrub and ssd (CPU, seconds)")
  parser.add_argument("--config-arg", default=None,
                      help="argument of configs/cifar10_resnet18.py get_config, e.g. float32")
  parser.add_argument("--methods", default=None,
                      help="comma-separated subset of config.unlearn.methods (default: all but "
                      "retrain; --quick: scrub,ssd)")
  parser.add_argument("--widths", default=None,
                      help="comma-separated widths instead of the config's (e.g. 1,4 with --quick)")
  parser.add_argument("--train-steps", type=int, default=None,
                      help="timed training steps per bucket (default 16; --quick 2)")
  parser.add_argument("--retain-batches", type=int, default=2,
                      help="retain batches of an unlearning slice (default 2)")
  parser.add_argument("--budget-s", type=float, default=None,
                      help="start no slice after this many seconds from the start (default: 180 "
                      "on accelerators, none on CPU); 0 = none")
  args = parser.parse_args(argv)

  # pylint: disable=g-import-not-at-top
  import jax
  from configs import cifar10_resnet18
  from unlearn_jax import data as data_lib
  # pylint: enable=g-import-not-at-top

  arg = ",".join(a for a in ("smoke" if args.quick else "", args.config_arg or "") if a)
  config = cifar10_resnet18.get_config(arg or None)
  if args.widths:
    config.widths = tuple(int(w) for w in args.widths.split(",") if w)
  all_methods = [m for m in config.unlearn.methods if m != "retrain"]
  methods = (args.methods.split(",") if args.methods else
             list(QUICK_METHODS) if args.quick else all_methods)
  unknown = sorted(set(methods) - set(all_methods))
  if unknown:
    parser.error(f"unknown method(s) {unknown}; the config has {all_methods}")
  if config.dataset.name == "synthetic":   # :smoke: the config's own tiny synthetic images
    dataset = data_lib.load("synthetic", **dict(config.dataset.kwargs))
  else:
    dataset = synthetic_cifar()
  budget = args.budget_s
  if budget is not None and budget < 0:
    parser.error(f"--budget-s must be >= 0 (0: none), got {budget}")
  if budget is None:
    budget = 0 if jax.default_backend() == "cpu" else 180

  def progress(line):
    print(f"[project_cifar {time.perf_counter() - start:.0f}s] {line}", file=sys.stderr,
          flush=True)

  projector = Projector(config, dataset, methods=methods,
                        train_steps_per_slice=args.train_steps or (2 if args.quick else 16),
                        retain_batches=args.retain_batches,
                        deadline=start + budget if budget else None, progress=progress)
  device, sizes = jax.devices()[0], projector.sizes
  created = datetime.datetime.now().isoformat(timespec="seconds")
  dtype = dict(config.model.kwargs).get("compute_dtype", "float32")
  header = {
      "title": "CIFAR-10 ResNet-18 sweep: projected run time" + (" (quick)" if args.quick else ""),
      "description": (
          f"`configs/cifar10_resnet18.py{':' + arg if arg else ''}` (compute dtype {dtype}, "
          f"widths {tuple(config.widths)}, seeds {tuple(config.seeds)}, {config.train.epochs} "
          f"epochs, batch {config.train.batch_size}, strategy {config.strategy!r}) on synthetic "
          f"{'x'.join(map(str, dataset.x_train.shape[1:]))} uint8 data made in memory "
          f"({sizes['train']} train = {sizes['retain']} retain + {sizes['forget']} forget), "
          f"{jax.default_backend()} ({device.device_kind}), jax {jax.__version__}, {created}. "
          f"Timed: up to {projector.train_steps_per_slice} training steps per bucket (one "
          "epoch at most); unlearning on "
          f"{args.retain_batches} retain batches of {config.unlearn.batch_size} and the full "
          "forget set, its second epoch (SSD: its second call); compilation excluded. A step is "
          "one optimizer step of every member of the bucket; projected = s/step x full steps + "
          "setup."),
      "config_arg": arg, "methods": methods, "backend": jax.default_backend(),
      "device_kind": device.device_kind, "jax_version": jax.__version__, "created": created,
      "quick": args.quick, "budget_s": budget or None}
  header["errors"] = projector.errors   # the same list, filled as slices fail
  slices = projector.run(lambda ss: write(args.out, header, ss, complete=False))
  print(write(args.out, header, slices, complete=True))
  progress(f"wrote {args.out} and {os.path.splitext(args.out)[0]}.json")
  return 1 if projector.errors else 0


if __name__ == "__main__":
  sys.exit(main())
