"""Stage: train member-stacked models per width bucket, resumable from Orbax checkpoints."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from unlearn_jax import train as train_lib
from unlearn_jax.train import sharding
from unlearn_jax.checkpoints import StageCheckpointer


@dataclasses.dataclass
class TrainedBucket:
  """A bucket's trained members: the widest module applies all of them."""
  widths: tuple
  members: list
  model: Any
  state: train_lib.TrainState
  mask: Any
  strategy: train_lib.Strategy
  seconds: float   # training time summed over every invocation that trained this bucket
  identity: dict   # the settings that determine these models (checked on resume)


def bucket_tag(widths) -> str:
  """A bucket's name in directories and logs, e.g. '32-64-128'."""
  return "-".join(str(w) for w in widths)


def _member_table(members) -> list[dict]:
  return [dataclasses.asdict(m) for m in members]


def train_bucket(config, name: str, widths, data: dict, pool_idx: np.ndarray, stream: int,
                 workdir: str, sample_x, num_classes: int) -> TrainedBucket:
  """Trains (or resumes, or loads) one bucket of members for `config.train.epochs` epochs."""
  t = config.train
  members = train_lib.member_grid(config.seeds, widths, [t.learning_rate], [t.weight_decay])
  steps_per_epoch = len(pool_idx) // t.batch_size
  tx_factory = train_lib.make_optimizer(t.optimizer, t.schedule, t.epochs * steps_per_epoch,
                                        momentum=t.momentum)
  model, state, mask = train_lib.init_members(config.model.name, members, num_classes, sample_x,
                                              tx_factory, **dict(config.model.kwargs))
  strategy = train_lib.resolve_strategy(config.strategy, config.model.name, max(widths))
  tag = bucket_tag(widths)
  ckpt = StageCheckpointer(os.path.join(workdir, name, f"widths_{tag}"))
  # What determines the trained models: a checkpoint made under other settings is refused.
  train_settings = {k: v for k, v in t.to_dict().items() if k != "checkpoint_every"}
  identity = {"members": _member_table(members), "train": train_settings,
              "dataset": config.dataset.to_dict(), "model": config.model.to_dict()}
  identity = json.loads(json.dumps(identity))   # tuples -> lists, as they come back from JSON
  meta = {"stage": name, "widths": list(widths), **identity, "config": config.to_json()}
  start, seconds = 0, 0.0
  if ckpt.latest_step() is not None:
    saved_meta = ckpt.read_meta()
    changed = sorted(k for k in identity if saved_meta.get(k) != identity[k])
    if changed:
      raise ValueError(f"{ckpt.directory} was trained with other {', '.join(changed)} settings "
                       "than the config asks for; use a new --workdir or delete that stage "
                       "directory.")
    state, saved = ckpt.restore(jax.eval_shape(lambda: state))
    start, seconds = saved["epoch"], saved.get("seconds", 0.0)
    logging.info("%s widths %s: resuming at epoch %d/%d", name, widths, start, t.epochs)
  if start < t.epochs:
    num = len(members)
    t_start, prior, elapsed = time.time(), seconds, {}

    def checkpoint(epoch, st, _):
      # Checkpoints hold the unpadded members, so a run may resume on another device count.
      if epoch % t.checkpoint_every == 0 or epoch == t.epochs:
        elapsed["seconds"] = prior + time.time() - t_start
        ckpt.save(epoch, sharding.unpad_members(st, num), dict(meta, epoch=epoch, **elapsed))

    keys = train_lib.member_keys(members, stream)
    if strategy.member_chunk == 0 and jax.device_count() > 1:
      mesh = sharding.member_mesh()
      padded = sharding.padded_count(num, jax.device_count())
      state = sharding.shard_members(sharding.pad_members(state, padded), mesh)
      keys = sharding.pad_members(keys, padded)
      data = sharding.replicate(data, mesh)
    logging.info("%s widths %s: %d members, strategy %s, %d device(s)", name, widths, num,
                 strategy, jax.device_count())
    state, _ = train_lib.train(
        model, train_lib.any_optimizer(tx_factory), state, data, pool_idx, keys,
        epochs=t.epochs, batch_size=t.batch_size, augment=t.augment, strategy=strategy,
        start_epoch=start, callback=checkpoint, name=f"{name} {tag}")
    state = sharding.unpad_members(state, num)
    seconds = elapsed["seconds"]   # as saved with the last epoch, so a rerun reports the same
    if jax.process_count() > 1:
      # Later stages are cheap and run the same on every process: gather the members here.
      state = jax.tree.map(jax.numpy.asarray, sharding.to_host(state))
  ckpt.close()
  bad = train_lib.diverged_members(state.params)
  if len(bad):
    logging.warning("%s widths %s: members %s diverged (non-finite parameters): %s; they are "
                    "reported as NaN and left out of aggregates.", name, widths, bad.tolist(),
                    [members[i] for i in bad])
  return TrainedBucket(tuple(widths), members, model, state, mask, strategy, seconds, identity)
