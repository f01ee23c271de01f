"""Stage: how unlearning changed decision regions near the forget examples and elsewhere.

For the selected unlearned members, against their originals (and the retrained references):
  * planes through triplets anchored at forget examples (x1 forget; x2, x3 forget) versus planes
    through retain-only and test-only triplets: fraction of the R x R grid relabelled;
  * random-direction neighbourhoods of forget, retain and test anchors at radii given as
    fractions of the mean distance between two training inputs: fraction of points relabelled.
Inputs are mapped to the models' float input space first (planes extend beyond the data range).
Region changes are cached per (model set, goal, lambda) under a key of the selected members, the
models' identity, the data's fingerprint and `config.regions`.
"""
from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from experiments import stage_cache
from experiments.stages.model_set import ModelSet
from unlearn_jax import compile_cache
from unlearn_jax.evaluation import decision_regions as dr
from unlearn_jax.models.layers import preprocess
from unlearn_jax.train.state import apply_model

VERSION = 1
FAMILIES = ("forget", "retain", "test")


class RegionProbe:
  """Fixed triplets, anchors and radii for one run, so every model is probed at the same points."""

  def __init__(self, splits, cfg, seed: int = 0):
    self.cfg = cfg
    x_all = np.concatenate([splits.x_train, splits.x_test])
    self.x = preprocess(jnp.asarray(x_all))
    n_train = len(splits.x_train)
    test_idx = np.arange(n_train, len(x_all))
    pools = {"forget": splits.forget_idx, "retain": splits.retain_idx, "test": test_idx}
    key = jax.random.key(seed)
    self.triplets = {f: np.asarray(dr.triplets(pools[f], pools[f], cfg.num_planes,
                                               jax.random.fold_in(key, i)))
                     for i, f in enumerate(FAMILIES)}
    rng = np.random.default_rng(seed)
    self.anchors = {f: np.sort(rng.choice(pools[f], min(cfg.num_anchors, len(pools[f])),
                                          replace=False)) for f in FAMILIES}
    flat = np.asarray(self.x[:n_train]).reshape(n_train, -1)
    pairs = rng.integers(0, n_train, (2, 512))
    self.mean_distance = float(np.linalg.norm(flat[pairs[0]] - flat[pairs[1]], axis=1).mean())
    self.radii = tuple(float(r) * self.mean_distance for r in cfg.radii_fraction)
    self.key = jax.random.fold_in(key, 99)

  @staticmethod
  def logits_fn(model):
    # One function object per module, so the labelling loops compile once per bucket.
    return compile_cache.cached(("region_logits", model), lambda: (
        lambda v, x: apply_model(model, v.params, v.batch_stats, x, False)[0]))

  def plane_labels(self, model, variables, family: str) -> np.ndarray:
    t = self.triplets[family]
    return dr.plane_labels(self.logits_fn(model), variables, self.x[t[:, 0]], self.x[t[:, 1]],
                           self.x[t[:, 2]], self.cfg.resolution, self.cfg.margin,
                           self.cfg.batch_size)

  def neighbourhood_labels(self, model, variables, family: str) -> np.ndarray:
    return dr.neighbourhood_labels(self.logits_fn(model), variables, self.x[self.anchors[family]],
                                   self.radii, self.cfg.num_directions, self.key,
                                   self.cfg.batch_size)

  def labels(self, model, variables) -> dict:
    """Labels of every probe point under every member: {(kind, family): (S, ...)}."""
    out = {}
    for f in FAMILIES:
      out[("plane", f)] = self.plane_labels(model, variables, f)
      out[("ball", f)] = self.neighbourhood_labels(model, variables, f)
    return out

  def changes(self, before: dict, after: dict) -> dict:
    """{(split, metric): (S,)}: mean relabelled fraction per family (and per radius)."""
    out = {}
    for f in FAMILIES:
      out[(f, "plane_changed")] = dr.changed_fraction(before[("plane", f)],
                                                      after[("plane", f)]).mean(-1)
      per_radius = dr.changed_fraction(before[("ball", f)], after[("ball", f)]).mean(1)
      for i, r in enumerate(self.cfg.radii_fraction):
        out[(f, f"ball_changed_r{r:g}")] = per_radius[:, i]
    return out


class ReferenceLabels:
  """Probe labels of a bucket's originals and retrained references, computed on first use."""

  def __init__(self, probe: RegionProbe, original: ModelSet, retrained: ModelSet):
    self._probe, self._sets, self._labels = probe, {"original": original,
                                                    "retrained": retrained}, {}
    self._lock = threading.Lock()   # the bucket's methods may ask side by side

  def models(self, name: str) -> ModelSet:
    return self._sets[name]

  def __getitem__(self, name: str) -> dict:
    with self._lock:
      if name not in self._labels:
        s = self._sets[name]
        self._labels[name] = self._probe.labels(s.model, s.variables)
      return self._labels[name]


def _index(labels: dict, idx) -> dict:
  return {k: v[np.asarray(idx)] for k, v in labels.items()}


def _cached(ctx, stem, key, compute) -> dict:
  key = {"stage": "regions", "version": VERSION, "data": ctx.fingerprint,
         "regions": ctx.config.regions.to_dict(), "split_seed": ctx.config.dataset.split_seed,
         **key}
  arrays = stage_cache.load_or_compute(
      stem, key, lambda: {f"{s}:{m}": v for (s, m), v in compute().items()}, write=ctx.writer)
  return {tuple(k.split(":")): v for k, v in arrays.items()}


def _nan_where(bad: np.ndarray, changes: dict) -> dict:
  # A diverged model has no decision regions: its changes are NaN, not 0 or 1.
  return {k: np.where(bad, np.nan, np.asarray(v)) for k, v in changes.items()}


def retrain_vs_original(ctx, refs: ReferenceLabels, original: ModelSet,
                        retrained: ModelSet) -> dict:
  """{(family, metric): (S,)}: how retraining from scratch changed each original's regions."""
  stem = ctx.layout.regions("retrained", original.widths)
  key = {"members": original.members, "models": [original.identity, retrained.identity]}
  changes = _cached(ctx, stem, key, lambda: ctx.probe.changes(refs["original"],
                                                              refs["retrained"]))
  return _nan_where(original.diverged | retrained.diverged, changes)


def run(ctx, refs: ReferenceLabels, unlearned: ModelSet, retrained: ModelSet, chosen, goal: str,
        lam: float) -> dict:
  """{(family, metric): (len(chosen),)} for the chosen members, vs their original (`*_changed`)
  and vs their retrained reference (`*_changed_vs_retrained`)."""
  origin = unlearned.origin[chosen]

  def compute():
    after = ctx.probe.labels(unlearned.model, unlearned.take(chosen))
    changes = ctx.probe.changes(_index(refs["original"], origin), after)
    vs_retrained = ctx.probe.changes(_index(refs["retrained"], origin), after)
    changes.update({(s, m + "_vs_retrained"): v for (s, m), v in vs_retrained.items()})
    return changes

  stem = ctx.layout.regions(unlearned.name, unlearned.widths, goal, lam)
  key = {"members": [unlearned.members[j] for j in chosen], "models": unlearned.identity,
         "retrained": retrained.identity}
  changes = _cached(ctx, stem, key, compute)
  bad = unlearned.diverged[chosen]
  out = {}
  for k, v in changes.items():
    out[k] = np.where(bad | (retrained.diverged[origin] if k[1].endswith("retrained") else False),
                      np.nan, v)
  return out
