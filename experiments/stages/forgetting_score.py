"""Stage: the NeurIPS 2023 forgetting score under the challenge's protocol, with its calibration.

Per width, with K = config.forgetting_score.models_per_side:
  * unlearned: ONE original (the first seed's) unlearned K times at the method's selected
    hyperparameters (privacy, config.regions.lam), the runs differing only in their randomness
    (data order, random labels, ...);
  * retrained: K models trained from scratch on the retain set (seeds offset, offset + K);
  * ceiling: K other retrained models (seeds offset + K, offset + 2K) scored against those K:
    what an exact unlearner scores at this K;
  * floor: K originals from other seeds (offset, offset + K), never unlearned, scored against
    the K retrained: what no unlearning scores.
Every score is reported with a 95% bootstrap interval over forget examples (the per-example
epsilons are resampled, the binning is redone). The group models are cached like every stage:
training stages per epoch, unlearning per (method, selected point), confidences per group.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import results, stage_cache, stage_pool
from experiments.layout import bucket_tag
from experiments.stages import train
from experiments.stages.model_set import ModelSet
from experiments.stages.unlearn import method_with_config, restore_result
from unlearn_jax import methods as methods_lib
from unlearn_jax import train as train_lib
from unlearn_jax.checkpoints import StageCheckpointer
from unlearn_jax.evaluation import epsilon_score, metrics as metrics_lib

VERSION = 1
KEY_STREAM = 5   # data-order stream of the K unlearning runs (2 is the sweep's unlearning)


def enabled(config) -> bool:
  return config.forgetting_score.models_per_side > 0


def run(ctx, widths, original: train.TrainedBucket, picks: dict,
        pool: stage_pool.StagePool | None = None) -> list[dict]:
  """Rows of the scores for every width of the bucket.

  picks: {method: (unlearned ModelSet, indices of its members selected for privacy at
    config.regions.lam)}, for the methods in config.forgetting_score.methods.
  pool: runs the groups that do not depend on each other side by side (default: in turn).
  """
  pool = pool or stage_pool.StagePool(1)
  cfg = ctx.config.forgetting_score
  k, offset = cfg.models_per_side, cfg.seed_offset
  start = time.time()
  tasks = [pool.submit(train.run, ctx, "group_retrained", widths,
                       seeds=range(offset, offset + 2 * k)),
           pool.submit(train.run, ctx, "group_original", widths, seeds=range(offset, offset + k))]
  tasks += [pool.submit(_unlearn_group, ctx, name, original, unlearned, chosen, k)
            for name, (unlearned, chosen) in picks.items()]
  retrained, floor, *unlearned_groups = (t.result() for t in tasks)
  groups = {"retrained": retrained.models, "original (floor)": floor.models,
            **dict(zip(picks, unlearned_groups))}
  conf = {name: forget_confidences(ctx, models) for name, models in groups.items()}
  rows = []
  for w in widths:
    of = lambda name: conf[name][[m["width"] == w for m in groups[name].members]]
    reference, other = of("retrained")[:k], of("retrained")[k:]
    scored = {"retrain (ceiling)": other, **{n: of(n) for n in groups if n != "retrained"}}
    for method, group in scored.items():
      rows += _score_rows(ctx, method, w, group, reference)
  logging.info("forgetting score widths %s: %.1fs", bucket_tag(widths), time.time() - start)
  return rows


def _score_rows(ctx, method, width, group, reference) -> list[dict]:
  finite = lambda a: a[np.all(np.isfinite(a), axis=1)]
  group, reference = finite(group), finite(reference)
  n = min(len(group), len(reference))
  if n < 3:   # below 3 models per side the score has no bucket at all
    logging.warning("forgetting score %s width %s: %d finite model(s) per side; skipped.", method,
                    width, n)
    return []
  eps = epsilon_score.per_example_epsilons(group, reference)
  score = epsilon_score.score_from_epsilons(eps, n)
  rng = np.random.default_rng(0)
  boot = [epsilon_score.score_from_epsilons(eps[rng.integers(0, len(eps), len(eps))], n)
          for _ in range(ctx.config.forgetting_score.bootstrap_resamples)]
  low, high = np.quantile(boot, [0.025, 0.975])
  row = lambda metric, value: results.row(stage="forgetting_score", method=method, width=width,
                                          seed="all", split="forget", metric=metric,
                                          value=float(value))
  return [row("epsilon_score", score), row("epsilon_score_low", low),
          row("epsilon_score_high", high), row("models_per_side", n)]


def _unlearn_group(ctx, name, original: train.TrainedBucket, unlearned: ModelSet, chosen,
                   k: int) -> ModelSet:
  """The first seed's original of every width unlearned K times at its selected point."""
  config, orig = ctx.config, original.models
  first_seed = config.seeds[0]
  picked = [j for j in chosen if unlearned.members[j]["seed"] == first_seed]
  picked.sort(key=lambda j: unlearned.members[j]["width"])
  origin = np.repeat([unlearned.origin[j] for j in picked], k)
  members = [dict(unlearned.members[j], run=r) for j in picked for r in range(k)]
  method, _, epochs = method_with_config(config, name)
  key = hashlib.sha256(json.dumps({"members": members, "originals": orig.identity,
                                   "unlearned": unlearned.identity}, sort_keys=True,
                                  default=str).encode()).hexdigest()[:10]
  ckpt = StageCheckpointer(ctx.layout.group_unlearned(name, orig.widths, key), max_to_keep=1)
  originals = train_lib.take_members(orig.variables, origin)
  start = time.time()
  restored = restore_result(ckpt, members, originals)
  if restored is not None:
    variables, seconds = restored
  else:
    base = train_lib.member_keys([original.members[i] for i in origin], stream=KEY_STREAM)
    keys = jax.vmap(jax.random.fold_in)(base, jnp.asarray([m["run"] for m in members]))
    hparams = {h: jnp.asarray([m["hparams"][h] for m in members], jnp.float32)
               for h in members[0]["hparams"]} if members else {}
    state, _ = methods_lib.unlearn(
        method, orig.model, originals,
        methods_lib.ForgetTask(ctx.data, ctx.splits.retain_idx, ctx.splits.forget_idx),
        methods_lib.MemberInputs(keys, hparams, train_lib.take_members(original.mask, origin)),
        methods_lib.RunSettings(epochs=epochs, batch_size=config.unlearn.batch_size,
                                strategy=orig.strategy, augment=config.train.augment))
    variables = state.variables
    jax.block_until_ready(variables)
    seconds = time.time() - start
    ckpt.save(1, variables, {"members": members, "seconds": seconds})
  ckpt.close()
  return ModelSet(f"group_{name}", orig.widths, members, orig.model, variables, orig.strategy,
                  origin, {"group": name, "key": key}, seconds)


def forget_confidences(ctx, models: ModelSet) -> np.ndarray:
  """(S, n_forget) logit-scaled true-class confidences on the forget set (cached); NaN rows for
  diverged members. Also the statistic of the per-example membership attack (stages/lira)."""
  def compute():
    x = jnp.asarray(ctx.splits.x_train[ctx.splits.forget_idx])
    logits = train_lib.predict_logits(models.model, models.variables.params,
                                      models.variables.batch_stats, x,
                                      batch_size=ctx.config.eval_batch_size,
                                      strategy=models.strategy)
    labels = ctx.splits.y_train[ctx.splits.forget_idx]
    conf = np.asarray(metrics_lib.logit_scaled_confidence(jnp.asarray(logits), labels))
    return {"conf": np.where(models.diverged[:, None], np.nan, conf)}
  # The inference batch size is the dots' batch: like the strategy, it can move last bits.
  key = {"stage": "forgetting_score", "version": VERSION, "members": models.members,
         "models": models.identity, "data": ctx.fingerprint,
         "eval_batch_size": ctx.config.eval_batch_size}
  return stage_cache.load_or_compute(ctx.layout.group_confidences(models.name, models.widths),
                                     key, compute, write=ctx.writer)["conf"]
