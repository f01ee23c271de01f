"""Stage: how unlearning changed decision regions near the forget examples and elsewhere.

For the selected unlearned members, against their originals (and the retrained references):
  * planes through triplets anchored at forget examples (x1 forget; x2, x3 forget) versus planes
    through retain-only and test-only triplets: fraction of the R x R grid relabelled;
  * random-direction neighbourhoods of forget, retain and test anchors at radii given as
    fractions of the mean distance between two training inputs: fraction of points relabelled.
Inputs are mapped to the models' float input space first (planes extend beyond the data range).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.evaluation import decision_regions as dr
from unlearn_jax.models.layers import preprocess
from unlearn_jax.train.state import apply_model

FAMILIES = ("forget", "retain", "test")


class RegionProbe:
  """Fixed triplets, anchors and radii for one run, so every model is probed at the same points."""

  def __init__(self, splits, cfg, seed: int = 0):
    self.cfg = cfg
    self._logits_fns = {}
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

  def logits_fn(self, model):
    # One function object per module, so the labelling loops compile once per bucket.
    if model not in self._logits_fns:
      self._logits_fns[model] = lambda v, x: apply_model(model, v["params"], v["batch_stats"], x,
                                                         False)[0]
    return self._logits_fns[model]

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


def index_labels(labels: dict, idx) -> dict:
  return {k: v[np.asarray(idx)] for k, v in labels.items()}


def plot_forget_plane(probe: RegionProbe, model, before_vars, after_vars, path: str,
                      num_classes: int, title: str) -> None:
  """Draws the first forget-anchored plane of one member before and after unlearning."""
  t = probe.triplets["forget"][:1]
  x1, x2, x3 = probe.x[t[:, 0]], probe.x[t[:, 1]], probe.x[t[:, 2]]
  res, margin = probe.cfg.plot_resolution, probe.cfg.margin
  fn = probe.logits_fn(model)
  before = dr.plane_labels(fn, before_vars, x1, x2, x3, res, margin, probe.cfg.batch_size)[0, 0]
  after = dr.plane_labels(fn, after_vars, x1, x2, x3, res, margin, probe.cfg.batch_size)[0, 0]
  _, _, _, anchor_ab = dr.plane_basis(x1[0], x2[0], x3[0])
  a_values, b_values = dr.plane_axes(anchor_ab, res, margin)
  dr.plot_plane(before, after, np.asarray(a_values), np.asarray(b_values), np.asarray(anchor_ab),
                path, num_classes, titles=(f"original ({title})", "unlearned"),
                anchor_names=("forget x1", "forget x2", "forget x3"))
