"""Stage: unlearn every original of a width bucket with one method over its hyperparameter grid.

Members are (original member x grid point), so a whole grid of every seed and width of the
bucket runs as one vmapped program. The result is checkpointed under a directory named by a hash
of what determines it (method, grid, epochs, batch size, defaults, options, the originals'
identity), so changing the method list or a grid re-runs only what changed, and a killed run
re-does at most the method it was in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

import jax
import numpy as np

from experiments.layout import bucket_tag
from experiments.stages.model_set import ModelSet
from experiments.stages.train import TrainedBucket
from unlearn_jax import methods as methods_lib
from unlearn_jax import train as train_lib
from unlearn_jax.checkpoints import NoUsableCheckpoint, StageCheckpointer

# Seeds of the fresh initialisations gradient methods ask for (Method.needs_init_variables):
# bad_teacher's random teacher, EU-k's re-initialised layers.
FRESH_INIT_SEED_OFFSET = 100_003


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


def stage_key(name: str, grid: dict, epochs: int, batch_size: int, method, originals: dict
              ) -> str:
  """Names a result directory: every setting it depends on, the originals' included."""
  blob = json.dumps({"method": name, "grid": {k: list(map(float, v)) for k, v in grid.items()},
                     "epochs": epochs, "batch_size": batch_size, "defaults": method.defaults,
                     "options": {k: str(v) for k, v in method.options.items()},
                     "originals": originals}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run(ctx, name: str, original: TrainedBucket) -> ModelSet:
  """Runs (or restores) method `name` on every original of the bucket over its grid."""
  config, orig = ctx.config, original.models
  method, grid, epochs = method_with_config(config, name)
  key = stage_key(name, grid, epochs, config.unlearn.batch_size, method, orig.identity)
  expanded, hparams, points = methods_lib.expand_grid(orig.variables, grid)
  reps = len(points)
  origin = np.repeat(np.arange(len(orig.members)), reps)
  members = [{"seed": orig.members[i]["seed"], "width": orig.members[i]["width"],
              "hparams": {**method.defaults, **points[j % reps]}} for j, i in enumerate(origin)]
  ckpt = StageCheckpointer(ctx.layout.unlearned(name, orig.widths, key), max_to_keep=1)
  start = time.time()
  restored = restore_result(ckpt, members, expanded)
  if restored is not None:
    variables, seconds = restored
  else:
    logging.info("unlearn %s widths %s: %d members (%d originals x %d grid points), %d epochs",
                 name, orig.widths, len(members), len(orig.members), reps, epochs)
    variables = unlearn_members(ctx, method, epochs, original, expanded, hparams, reps)
    jax.block_until_ready(variables)
    seconds = time.time() - start
    ckpt.save(1, variables, {"members": members, "seconds": seconds, "method": name})
    logging.info("unlearn %s widths %s: %.1fs (%.2fs per member)", name, orig.widths, seconds,
                 seconds / len(members))
  ckpt.close()
  identity = {"method": name, "key": key, "originals": orig.identity}
  models = ModelSet(name, orig.widths, members, orig.model, variables, orig.strategy, origin,
                    identity, seconds)
  ctx.note_diverged(f"unlearn {name}", bucket_tag(orig.widths), models)
  return models


def restore_result(ckpt, members, expanded):
  """(variables, seconds) of a finished result for `members`, or None (none, or damaged)."""
  if ckpt.latest_step() is None:
    return None
  try:
    if ckpt.read_meta()["members"] != members:
      return None
    variables, meta = ckpt.restore(jax.eval_shape(lambda: expanded))
  except NoUsableCheckpoint as e:
    logging.error("%s", e)
    return None
  return variables, meta["seconds"]


def unlearn_members(ctx, method, epochs, original: TrainedBucket, expanded, hparams, reps,
                    retain_idx=None, forget_idx=None):
  """The unlearned member-stacked variables of `expanded`: every original of the bucket
  repeated `reps` times (grid points), with per-member `hparams`, forgetting the sweep's forget
  set, or per-member (S, P) `retain_idx` / `forget_idx` (shadow models)."""
  config, splits = ctx.config, ctx.splits
  retain_idx = splits.retain_idx if retain_idx is None else retain_idx
  forget_idx = splits.forget_idx if forget_idx is None else forget_idx
  keys = methods_lib.repeat_members(train_lib.member_keys(original.members, stream=2), reps)
  mask = methods_lib.repeat_members(original.mask, reps)
  init_variables = None
  if method.needs_init_variables:
    fresh = [dataclasses.replace(m, seed=m.seed + FRESH_INIT_SEED_OFFSET)
             for m in original.members]
    _, fresh_state, _ = train_lib.init_members(
        config.model.name, fresh, splits.num_classes, ctx.sample_x,
        train_lib.make_optimizer(), **dict(config.model.kwargs))
    init_variables = methods_lib.repeat_members(fresh_state.variables, reps)
  state, _ = methods_lib.unlearn(
      method, original.models.model, expanded,
      methods_lib.ForgetTask(ctx.data, retain_idx, forget_idx),
      methods_lib.MemberInputs(keys, hparams, mask, init_variables),
      methods_lib.RunSettings(epochs=epochs, batch_size=config.unlearn.batch_size,
                              strategy=original.models.strategy,
                              augment=config.train.augment))
  return state.variables
