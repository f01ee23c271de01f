"""Stage: unlearn every original of a width bucket with one method over its hyperparameter grid.

Members are (original member x grid point), so a whole grid of every seed and width of the
bucket runs as one vmapped program. Results are checkpointed under a directory named by a hash
of what determines them (method, grid, epochs, batch size), so changing the method list or a
grid re-runs only what changed, and a killed run re-does at most the method it was in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Any

import jax

from experiments.training_stage import TrainedBucket, bucket_tag
from unlearn_jax import methods as methods_lib
from unlearn_jax import train as train_lib
from unlearn_jax.checkpoints import StageCheckpointer

RANDOM_TEACHER_SEED_OFFSET = 100_003   # seeds of bad_teacher's randomly initialised teachers


@dataclasses.dataclass
class UnlearnedBucket:
  method: str
  uses_forget: bool
  widths: tuple
  members: list[dict]          # {'seed', 'width', 'hparams'} per member, seed-major then grid
  points: list[dict]           # the grid
  origin: list[int]            # index of each member's original in the bucket
  model: Any
  state: Any
  strategy: train_lib.Strategy
  directory: str
  seconds: float


def method_with_config(config, name: str):
  """The registered method with the config's default overrides, grid and epochs."""
  u = config.unlearn
  method = methods_lib.get(name, **dict(u.hparams.get(name, {})))
  grid = dict(u.grids.get(name, method.grid))
  unknown = sorted(set(grid) - set(method.defaults))
  if unknown:
    raise ValueError(f"config.unlearn.grids[{name!r}] has unknown hyperparameters {unknown}; "
                     f"allowed: {sorted(method.defaults)}.")
  epochs = int(u.epochs.get(name, method.epochs))
  return method, grid, epochs


def check_config(config) -> None:
  """Fails fast on unknown method names anywhere in config.unlearn, before any training."""
  u, known = config.unlearn, set(methods_lib.names())
  for field, names in (("methods", list(u.methods)), ("grids", list(u.grids)),
                       ("epochs", list(u.epochs)), ("hparams", list(u.hparams))):
    unknown = sorted(set(names) - known)
    if unknown:
      raise ValueError(f"config.unlearn.{field} names unknown method(s) {unknown}; allowed: "
                       f"{sorted(known)}.")
  for name in u.methods:
    if name != "retrain":
      method_with_config(config, name)   # unknown hyperparameter names raise here


def stage_key(name: str, grid: dict, epochs: int, batch_size: int, method, originals: dict
              ) -> str:
  """Names a result directory: every setting it depends on, the originals' included."""
  blob = json.dumps({"method": name, "grid": {k: list(map(float, v)) for k, v in grid.items()},
                     "epochs": epochs, "batch_size": batch_size, "defaults": method.defaults,
                     "options": {k: str(v) for k, v in method.options.items()},
                     "originals": originals}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:10]


def unlearn_bucket(config, name: str, original: TrainedBucket, data: dict, splits, workdir: str,
                   sample_x, num_classes: int) -> UnlearnedBucket:
  """Runs (or restores) method `name` on every original of the bucket over its grid."""
  method, grid, epochs = method_with_config(config, name)
  u = config.unlearn
  tag = bucket_tag(original.widths)
  key = stage_key(name, grid, epochs, u.batch_size, method, original.identity)
  directory = os.path.join(workdir, "unlearn", name, f"widths_{tag}_{key}")
  originals = {"params": original.state.params, "batch_stats": original.state.batch_stats}
  expanded, hparams, points = methods_lib.expand_grid(originals, grid)
  reps = len(points)
  origin = [i for i in range(len(original.members)) for _ in range(reps)]
  members = [{"seed": original.members[i].seed, "width": original.members[i].width,
              "hparams": {**method.defaults, **points[j % reps]}} for j, i in enumerate(origin)]
  ckpt = StageCheckpointer(directory, max_to_keep=1)
  start = time.time()
  if ckpt.latest_step() is not None and ckpt.read_meta()["members"] == members:
    state, meta = ckpt.restore(jax.eval_shape(lambda: expanded))
    seconds = meta["seconds"]
  else:
    logging.info("unlearn %s widths %s: %d members (%d originals x %d grid points), %d epochs",
                 name, original.widths, len(members), len(original.members), reps, epochs)
    state = _run(method, grid, epochs, original, expanded, hparams, reps, data, splits, sample_x,
                 num_classes, config)
    jax.block_until_ready(state)
    seconds = time.time() - start
    ckpt.save(1, state, {"members": members, "seconds": seconds, "method": name})
    logging.info("unlearn %s widths %s: %.1fs (%.2fs per member)", name, original.widths, seconds,
                 seconds / len(members))
  ckpt.close()
  bad = train_lib.diverged_members(state["params"])
  if len(bad):
    logging.warning("unlearn %s widths %s: members %s diverged (non-finite parameters), e.g. %s; "
                    "their metrics are NaN and tuning never selects them.", name,
                    original.widths, bad.tolist(), members[int(bad[0])])
  return UnlearnedBucket(name, method.uses_forget, original.widths, members, points, origin,
                         original.model, state, original.strategy, directory, seconds)


def _run(method, grid, epochs, original, expanded, hparams, reps, data, splits, sample_x,
         num_classes, config):
  """The unlearned member-stacked variables: {'params', 'batch_stats'}."""
  u = config.unlearn
  keys = methods_lib.repeat_members(train_lib.member_keys(original.members, stream=2), reps)
  mask = methods_lib.repeat_members(original.mask, reps)
  init_variables = None
  if method.name == "bad_teacher":
    fresh = [dataclasses.replace(m, seed=m.seed + RANDOM_TEACHER_SEED_OFFSET)
             for m in original.members]
    _, fresh_state, _ = train_lib.init_members(
        config.model.name, fresh, num_classes, sample_x,
        train_lib.make_optimizer(), **dict(config.model.kwargs))
    init_variables = methods_lib.repeat_members(
        {"params": fresh_state.params, "batch_stats": fresh_state.batch_stats}, reps)
  state, _ = methods_lib.unlearn(
      method, original.model, expanded, data, splits.retain_idx, splits.forget_idx, keys,
      hparams, mask, epochs=epochs, batch_size=u.batch_size, strategy=original.strategy,
      augment=config.train.augment, init_variables=init_variables)
  return {"params": state.params, "batch_stats": state.batch_stats}
