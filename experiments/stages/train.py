"""Stage: train a bucket's members (originals on the train split, retrained references on the
retain set), resumable from per-epoch Orbax checkpoints.

A checkpoint made under other settings (members, training recipe, dataset settings and content,
model) is refused with the settings that differ, never silently continued.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any

import jax
import numpy as np

from experiments.stages.model_set import ModelSet
from experiments.layout import bucket_tag
from unlearn_jax import models as models_lib
from unlearn_jax import train as train_lib
from unlearn_jax.checkpoints import NoUsableCheckpoint, StageCheckpointer
from unlearn_jax.train import sharding

# name -> (which examples it trains on, the data-order stream of its members' keys). The
# 'group_*' stages are the many-model forgetting score's models and the 'shadow_*' stages the
# membership attack's shadow models (their own seeds); 'pools' trains every seed on its own
# subset (given by the caller).
STAGES = {"original": ("train", 0), "retrained": ("retain", 1),
          "group_original": ("train", 0), "group_retrained": ("retain", 1),
          "shadow_original": ("train", 0), "shadow_retrained": ("pools", 1)}


@dataclasses.dataclass
class TrainedBucket:
  """A bucket's trained models (the widest module applies all of them), their member specs
  (seeds: unlearning derives its keys from them) and the active mask of the padded widths."""
  models: ModelSet
  members: list[train_lib.Member]
  mask: Any


def changed_settings(identity: dict, saved_meta: dict) -> list[str]:
  """The settings a checkpoint's metadata disagrees on."""
  return sorted(k for k in identity if saved_meta.get(k) != identity.get(k))


def run(ctx, name: str, widths, seeds=None, pools=None) -> TrainedBucket:
  """Trains (or resumes, or loads) stage `name` (see STAGES) of one bucket, for `seeds`
  (default config.seeds) x widths.

  pools: for a 'pools' stage, (len(seeds), P) indices into the train split, seed i's training
    examples (the same at every width).
  """
  config, splits, t = ctx.config, ctx.splits, ctx.config.train
  pool_name, stream = STAGES[name]
  seeds = list(config.seeds if seeds is None else seeds)
  members = train_lib.member_grid(seeds, widths, [t.learning_rate], [t.weight_decay])
  if pool_name == "pools":
    pools = np.asarray(pools, np.int32)
    if pools.ndim != 2 or len(pools) != len(seeds):
      raise ValueError(f"stage {name!r} needs one pool per seed, shape ({len(seeds)}, P); got "
                       f"{pools.shape}.")
    # member_grid is width-major: every width repeats the seeds in order.
    pool_idx = np.tile(pools, (len(widths), 1))
  else:
    pool_idx = np.arange(len(splits.y_train)) if pool_name == "train" else splits.retain_idx
  steps_per_epoch = pool_idx.shape[-1] // t.batch_size
  tx_factory = train_lib.make_optimizer(t.optimizer, t.schedule, t.epochs * steps_per_epoch,
                                        momentum=t.momentum)
  model, state, mask = train_lib.init_members(config.model.name, members, splits.num_classes,
                                              ctx.sample_x, tx_factory,
                                              **dict(config.model.kwargs))
  # Stages run side by side on the cores (experiments/stage_pool.py), so 'auto' forms no member
  # chunks; always, so the results do not depend on how many stages ran at once.
  strategy = train_lib.resolve_strategy(config.strategy, config.model.name, max(widths),
                                        shares_cores=True)
  tag = bucket_tag(widths)
  ckpt = StageCheckpointer(ctx.layout.trained(name, widths))
  # What determines the trained models: a checkpoint made under other settings is refused. The
  # strategy and the model's formulation are the ones resolved (member chunks and formulations
  # can change last bits); every later stage's cache key holds this identity, and the later
  # stages run under the same strategy.
  train_settings = {k: v for k, v in t.to_dict().items() if k != "checkpoint_every"}
  identity = json.loads(json.dumps({
      "members": [dataclasses.asdict(m) for m in members], "train": train_settings,
      "dataset": config.dataset.to_dict(), "data": ctx.fingerprint,
      "model": dict(config.model.to_dict(), kwargs=models_lib.resolved_kwargs(
          config.model.name, dict(config.model.kwargs))),
      "strategy": dataclasses.asdict(strategy)}))
  if pool_name == "pools":
    identity["pools"] = hashlib.sha256(pool_idx.tobytes()).hexdigest()
  meta = {"stage": name, "widths": list(widths), **identity, "config": config.to_json()}
  start, seconds = 0, 0.0
  if ckpt.latest_step() is not None:
    try:
      saved_meta = ckpt.read_meta()
      changed = changed_settings(identity, saved_meta)
      if changed:
        raise ValueError(f"{ckpt.directory} was trained with other {', '.join(changed)} "
                         "settings than the config asks for; use a new --workdir or delete that "
                         "stage directory.")
      state, saved = ckpt.restore(jax.eval_shape(lambda: state))
      start, seconds = saved["epoch"], saved.get("seconds", 0.0)
      logging.info("%s widths %s: resuming at epoch %d/%d", name, widths, start, t.epochs)
    except NoUsableCheckpoint as e:
      logging.error("%s", e)
  if start < t.epochs:
    state, seconds = _train(ctx, name, widths, model, state, tx_factory, pool_idx, stream,
                            members, strategy, ckpt, meta, start, seconds)
  ckpt.close()
  table = [dataclasses.asdict(m) | {"hparams": {}} for m in members]
  models = ModelSet(name, tuple(widths), table, model, state.variables, strategy,
                    np.arange(len(members)), identity, seconds)
  ctx.note_diverged(name, tag, models)
  return TrainedBucket(models, members, mask)


def _train(ctx, name, widths, model, state, tx_factory, pool_idx, stream, members, strategy,
           ckpt, meta, start, seconds):
  t, num, tag = ctx.config.train, len(members), bucket_tag(widths)
  t_start, prior, elapsed = time.time(), seconds, {}

  def checkpoint(epoch, st, _):
    # Checkpoints hold the unpadded members, so a run may resume on another device count.
    if epoch % t.checkpoint_every == 0 or epoch == t.epochs:
      elapsed["seconds"] = prior + time.time() - t_start
      ckpt.save(epoch, sharding.unpad_members(st, num), dict(meta, epoch=epoch, **elapsed))

  data = ctx.data
  keys = train_lib.member_keys(members, stream)
  if strategy.chunk_size(num) == 0 and jax.device_count() > 1:
    mesh = sharding.member_mesh()
    padded = sharding.padded_count(num, jax.device_count())
    state = sharding.shard_members(sharding.pad_members(state, padded), mesh)
    keys = sharding.pad_members(keys, padded)
    if pool_idx.ndim == 2:
      pool_idx = sharding.pad_members(pool_idx, padded)
    data = sharding.replicate(data, mesh)
  logging.info("%s widths %s: %d members, strategy %s, %d device(s)", name, widths, num,
               strategy, jax.device_count())
  state, _ = train_lib.train(
      model, train_lib.any_optimizer(tx_factory), state, data, pool_idx, keys,
      epochs=t.epochs, batch_size=t.batch_size, augment=t.augment, strategy=strategy,
      start_epoch=start, callback=checkpoint, name=f"{name} {tag}")
  state = sharding.unpad_members(state, num)
  if jax.process_count() > 1:
    # Later stages are cheap and run the same on every process: gather the members here.
    state = jax.tree.map(jax.numpy.asarray, sharding.to_host(state))
  return state, elapsed["seconds"]   # as saved with the last epoch, so a rerun reports the same
