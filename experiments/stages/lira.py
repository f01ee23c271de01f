"""Stage: per-example membership inference with shadow models, LiRA and U-LiRA.

Shadow protocol per width bucket, with M = config.lira.shadow_models (members of one vmapped
program per bucket, so M models cost about as much as a few):

  * candidates: the forget set F plus |F| other training examples (drawn once); shadows come in
    pairs that split the candidates into two random halves of |F|, so every candidate is the
    forget set of exactly half of the shadows, and the sizes match the sweep's everywhere;
  * shadow originals: M models trained on the whole train split, as the sweep's originals are
    (seeds config.lira.seed_offset + m);
  * shadow retrains: shadow m retrained from scratch without its half H_m (pool minus H_m);
  * shadow unlearned: shadow original m unlearned with the method, forgetting H_m, at the
    hyperparameters the sweep selected for privacy at config.regions.lam for seed
    config.seeds[m % len(seeds)] at that width (so the shadows mix the selections as the targets
    do).

For every forget example x the shadows with x in H_m give the "in" and "out" samples of the
logit-scaled true-class confidence: U-LiRA (a method) fits "in" on the unlearned shadows and
"out" on the retrained ones; LiRA (no unlearning) fits "in" on every shadow original. The
targets are the sweep's own models on F: each method's models selected for privacy (members)
against the retrained references (non-members); the original models against the retrained ones
(LiRA: the attack must detect them where they memorise); and, for calibration, retrained
references of half the seeds against those of the other half (nothing to find: AUC about 0.5,
TPR about the FPR). AUC and TPR at config.lira.fprs come with two-way bootstrap intervals
(target models and examples resampled).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

import jax.numpy as jnp
import numpy as np

from experiments import results, stage_pool
from experiments.layout import bucket_tag
from experiments.stages import train, unlearn
from experiments.stages.forgetting_score import forget_confidences
from experiments.stages.model_set import ModelSet
from unlearn_jax.checkpoints import StageCheckpointer
from unlearn_jax.evaluation import lira

VERSION = 1
CANDIDATE_STREAM = 7919   # seeds the candidate draw and the halves (with config.dataset.split_seed)
ORIGINAL, CHANCE = "original (LiRA)", "retrain vs retrain"
ATTACKS = ("online", "offline")


def enabled(config) -> bool:
  return config.lira.shadow_models > 0


def shadow_halves(forget_idx, retain_idx, num_shadows: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(M, |F|) forget sets and (M, N - |F|) retain sets of the shadows (rows sorted).

  The candidates are F plus |F| retain examples; shadows 2j and 2j + 1 split them into two
  random halves, so every candidate is forgotten by exactly half of the shadows.
  """
  forget_idx, retain_idx = np.asarray(forget_idx), np.asarray(retain_idx)
  if num_shadows % 2 or num_shadows < 4:
    raise ValueError(f"config.lira.shadow_models={num_shadows}; it must be an even number >= 4 "
                     "(shadows come in pairs that split the candidates), e.g. 64.")
  if len(retain_idx) < len(forget_idx):
    raise ValueError(f"the shadow protocol draws {len(forget_idx)} extra candidates from the "
                     f"{len(retain_idx)} retain examples; use a smaller forget set.")
  rng = np.random.default_rng([seed, CANDIDATE_STREAM])
  candidates = np.concatenate([forget_idx, rng.choice(retain_idx, len(forget_idx),
                                                      replace=False)])
  n = len(forget_idx)
  halves = []
  for _ in range(num_shadows // 2):
    perm = rng.permutation(len(candidates))
    halves += [np.sort(candidates[perm[:n]]), np.sort(candidates[perm[n:]])]
  forget_sets = np.stack(halves)
  every = np.union1d(forget_idx, retain_idx)
  retain_sets = np.stack([np.setdiff1d(every, h) for h in forget_sets])
  return forget_sets, retain_sets


def run(ctx, widths, original: train.TrainedBucket, retrained: ModelSet, picks: dict,
        pool: stage_pool.StagePool | None = None) -> tuple[list[dict], dict]:
  """Rows of the attacks for every width of the bucket, and the seconds each shadow set took
  to train or unlearn (as recorded when it was made, so a resumed run reports the same).

  picks: {method: (unlearned ModelSet, indices of its members selected for privacy at
    config.regions.lam)}, for the methods in config.lira.methods.
  pool: runs the shadow sets that do not depend on each other side by side (default: in turn).
  """
  pool = pool or stage_pool.StagePool(1)
  cfg, splits = ctx.config.lira, ctx.splits
  m, offset = cfg.shadow_models, cfg.seed_offset
  start = time.time()
  forget_sets, retain_sets = shadow_halves(splits.forget_idx, splits.retain_idx, m,
                                           ctx.config.dataset.split_seed)
  seeds = range(offset, offset + m)
  tasks = [pool.submit(train.run, ctx, "shadow_original", widths, seeds=seeds),
           pool.submit(train.run, ctx, "shadow_retrained", widths, seeds=seeds,
                       pools=retain_sets)]
  shadow_orig, shadow_retr = (t.result() for t in tasks)
  # Queued before this thread computes statistics, so the workers unlearn meanwhile.
  tasks = {name: pool.submit(_unlearn_shadows, ctx, name, shadow_orig, unlearned, chosen,
                             forget_sets, retain_sets)
           for name, (unlearned, chosen) in picks.items()}
  # name -> (statistics (models, |F|), each model's width)
  stats = lambda models: (forget_confidences(ctx, models), models.member_widths)
  conf = {"shadow_original": stats(shadow_orig.models),
          "shadow_retrained": stats(shadow_retr.models),
          "original": stats(original.models), "retrained": stats(retrained)}
  tag = bucket_tag(widths)
  seconds = {f"lira {s.models.name} {tag}": s.models.seconds for s in (shadow_orig, shadow_retr)}
  for name, (unlearned, chosen) in picks.items():
    shadows = tasks[name].result()
    seconds[f"lira shadow_{name} {tag}"] = shadows.seconds
    conf[f"shadow_{name}"] = stats(shadows)
    conf[name] = stats(unlearned.subset(chosen, f"{name}_lira_targets"))
  # inside[m, i]: forget example i is in shadow m's half (it was trained on, then forgotten).
  inside = np.stack([np.isin(splits.forget_idx, h) for h in forget_sets])
  rows = []
  for w in widths:
    at = lambda name: conf[name][0][conf[name][1] == w]
    rows += _width_rows(ctx, w, at, inside, list(picks))
  logging.info("lira widths %s: %d shadows per width, %.1fs", tag, m, time.time() - start)
  return rows, seconds


def _width_rows(ctx, width, at, inside, methods) -> list[dict]:
  """The attacks at one width; `at(name)` gives a model set's (models, |F|) statistics."""
  cfg = ctx.config.lira
  out_fit = lira.gaussian_fit(at("shadow_retrained"), inside)[:2]
  retrained = at("retrained")
  trained_fit = lira.gaussian_fit(at("shadow_original"))[:2]   # every shadow trained on F
  cases = {ORIGINAL: (trained_fit, at("original"), retrained),
           CHANCE: (trained_fit, retrained[0::2], retrained[1::2])}
  for name in methods:
    cases[name] = (lira.gaussian_fit(at(f"shadow_{name}"), inside)[:2], at(name), retrained)
  rows = []
  for method, (in_fit, members, others) in cases.items():
    for attack in ATTACKS:
      if attack == "online":
        score = lambda s: lira.online_scores(s, in_fit, out_fit)
      else:
        score = lambda s: lira.offline_scores(s, out_fit)
      rows += _attack_rows(cfg, method, width, attack, score(members), score(others))
    rows += [_row(method, width, "shadow_models", len(inside)),
             _row(method, width, "target_members", int(np.isfinite(members).all(1).sum())),
             _row(method, width, "target_non_members", int(np.isfinite(others).all(1).sum()))]
  return rows


def _attack_rows(cfg, method, width, attack, members, others) -> list[dict]:
  """AUC and TPR at each FPR with their intervals; diverged target models (NaN) left out."""
  members = members[np.isfinite(members).all(axis=1)]
  others = others[np.isfinite(others).all(axis=1)]
  if not (len(members) and len(others)):
    logging.warning("lira %s width %s: no finite target models on one side; skipped.", method,
                    width)
    return []
  stat = lambda p, q: lira.attack_metrics(p, q, cfg.fprs)
  point = stat(members.ravel(), others.ravel())
  bounds = lira.two_way_bootstrap(members, others, stat, cfg.bootstrap_resamples)
  rows = []
  for name, value in point.items():
    low, high = bounds[name]
    rows += [_row(method, width, f"{attack}_{name}", value),
             _row(method, width, f"{attack}_{name}_low", low),
             _row(method, width, f"{attack}_{name}_high", high)]
  return rows


def _row(method, width, metric, value) -> dict:
  return results.row(stage="lira", method=method, width=width, seed="all", split="forget",
                     metric=metric, value=float(value))


def _unlearn_shadows(ctx, name, shadow: train.TrainedBucket, unlearned: ModelSet, chosen,
                     forget_sets, retain_sets) -> ModelSet:
  """Every shadow original unlearned with `name`, forgetting its own half."""
  config, orig = ctx.config, shadow.models
  method, _, epochs = unlearn.method_with_config(config, name)
  selected = {(unlearned.members[j]["seed"], unlearned.members[j]["width"]):
              unlearned.members[j]["hparams"] for j in chosen}
  seeds, num = list(config.seeds), len(forget_sets)
  members = []
  for i, member in enumerate(shadow.members):
    shadow_index = i % num    # member_grid is width-major
    at_width = [h for (s, w), h in sorted(selected.items()) if w == member.width]
    # A seed without a selection (its original diverged) borrows another seed's; a width with
    # none at all falls back to the method's defaults.
    hparams = selected.get((seeds[shadow_index % len(seeds)], member.width)) or (
        at_width[0] if at_width else dict(method.defaults))
    if not at_width and shadow_index == 0:
      logging.warning("lira %s width %s: no selected model to copy hyperparameters from; the "
                      "shadows use the method's defaults.", name, member.width)
    members.append({"seed": member.seed, "width": member.width, "hparams": hparams,
                    "shadow": shadow_index})
  key = hashlib.sha256(json.dumps({"members": members, "originals": orig.identity,
                                   "unlearned": unlearned.identity, "version": VERSION},
                                  sort_keys=True, default=str).encode()).hexdigest()[:10]
  ckpt = StageCheckpointer(ctx.layout.lira_unlearned(name, orig.widths, key), max_to_keep=1)
  start = time.time()
  restored = unlearn.restore_result(ckpt, members, orig.variables)
  if restored is not None:
    variables, seconds = restored
  else:
    logging.info("lira: unlearning %d shadow models with %s", len(members), name)
    hparams = {h: jnp.asarray([m["hparams"][h] for m in members], jnp.float32)
               for h in members[0]["hparams"]}
    per_width = lambda sets: np.tile(sets, (len(orig.widths), 1))
    variables = unlearn.unlearn_members(ctx, method, epochs, shadow, orig.variables, hparams, 1,
                                        retain_idx=per_width(retain_sets),
                                        forget_idx=per_width(forget_sets))
    seconds = time.time() - start
    ckpt.save(1, variables, {"members": members, "seconds": seconds})
  ckpt.close()
  models = ModelSet(f"shadow_{name}", orig.widths, members, orig.model, variables, orig.strategy,
                    np.arange(len(members)), {"lira": name, "key": key}, seconds)
  ctx.note_diverged(f"lira shadows {name}", bucket_tag(orig.widths), models)
  return models
