"""The member axis: which (seed, width, hyperparameters) each vmapped model is.

Members of different widths share one axis by initialising each at its own width (its own
fan-in) and zero-padding it to the bucket's widest shape (see models/padding.py).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from unlearn_jax import compile_cache, models
from unlearn_jax.train.state import TrainState, Variables

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Member:
  seed: int
  width: float
  learning_rate: float
  weight_decay: float


def member_grid(seeds: Sequence[int], widths: Sequence[float], learning_rates: Sequence[float],
                weight_decays: Sequence[float]) -> list[Member]:
  """All combinations, width-major so that a bucket's members are contiguous."""
  return [Member(s, w, lr, wd) for w, lr, wd, s in
          itertools.product(widths, learning_rates, weight_decays, seeds)]


def member_keys(members: Sequence[Member], stream: int) -> jax.Array:
  """Per-member typed keys for a data/augmentation stream (0: original, 1: retrain, ...)."""
  return jnp.stack([jax.random.fold_in(jax.random.key(m.seed), 1 + stream) for m in members])


def init_variables(model_name: str, width: float, num_classes: int, seed: int, sample_x,
                   **model_kwargs) -> Variables:
  """Initial variables of one model at its own width; the init key depends on the seed only."""
  init = _jitted_init(model_name, width, num_classes, tuple(sorted(model_kwargs.items())))
  return init(jax.random.fold_in(jax.random.key(seed), 0), sample_x)


def _jitted_init(model_name: str, width: float, num_classes: int, model_kwargs: tuple):
  # An eager init dispatches every op separately (tens of seconds for a ResNet); one compiled
  # init per architecture serves every seed.
  def build():
    model = models.get(model_name, width=width, num_classes=num_classes, **dict(model_kwargs))
    return jax.jit(lambda key, x: Variables.from_flax(model.init(key, x, train=False)))
  return compile_cache.cached(("init", model_name, width, num_classes, model_kwargs), build)


def variable_structure(model_name: str, width: float, num_classes: int, sample_x,
                       **model_kwargs) -> jax.tree_util.PyTreeDef:
  """The tree structure of a model's variables at `width` (traced abstractly, nothing runs).

  Widths can share a padded member axis only if their structures are equal; they differ where a
  layer exists at some widths only (SCRUB's ResNet: the first block has an identity shortcut
  only when its width equals the 64-channel stem, p = 1).
  """
  return jax.tree.structure(
      _abstract_variables(model_name, width, num_classes, sample_x, **model_kwargs)[1])


def _abstract_variables(model_name: str, width: float, num_classes: int, sample_x,
                        **model_kwargs):
  """(module, shapes and dtypes of its variables) at `width`, without computing anything."""
  model = models.get(model_name, width=width, num_classes=num_classes, **model_kwargs)
  return model, jax.eval_shape(
      lambda: Variables.from_flax(model.init(jax.random.key(0), sample_x, train=False)))


def init_members(model_name: str, members: Sequence[Member], num_classes: int, sample_x,
                 tx_factory, **model_kwargs) -> tuple[nn.Module, TrainState, PyTree]:
  """Initialises every member padded to the widest width.

  Returns the widest module (used to apply every member), the member-stacked TrainState, and the
  member-stacked active mask (1 on each member's own parameters).
  """
  bucket_width = max(m.width for m in members)
  model, wide_shapes = _abstract_variables(model_name, bucket_width, num_classes, sample_x,
                                           **model_kwargs)
  for width in sorted({m.width for m in members} - {bucket_width}):
    if (variable_structure(model_name, width, num_classes, sample_x, **model_kwargs)
        != jax.tree.structure(wide_shapes)):
      raise ValueError(f"{model_name} at width {width} has other layers than at width "
                       f"{bucket_width}, so it cannot be zero-padded into it; train them in "
                       "separate buckets (train.width_buckets with `structure` splits them).")
  variables, masks = [], []
  for m in members:
    narrow = init_variables(model_name, m.width, num_classes, m.seed, sample_x, **model_kwargs)
    variables.append(models.pad_variables(narrow, wide_shapes))
    masks.append(models.active_mask(narrow.params, wide_shapes.params))
  stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
  variables, masks = stack(variables), stack(masks)
  lrs = jnp.asarray([m.learning_rate for m in members], jnp.float32)
  wds = jnp.asarray([m.weight_decay for m in members], jnp.float32)

  def init_one(params, batch_stats, lr, wd):
    tx = tx_factory(learning_rate=lr, weight_decay=wd)
    return TrainState(jnp.zeros((), jnp.int32), params, batch_stats, tx.init(params))

  state = jax.vmap(init_one)(variables.params, variables.batch_stats, lrs, wds)
  return model, state, masks


@jax.jit
def _finite_members(params: PyTree) -> jax.Array:
  # Compiled: op-by-op dispatch over every leaf cost ~0.25 s per call.
  leaves = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in jax.tree.leaves(params)]
  return jnp.stack(leaves).all(axis=0)


def diverged_members(params: PyTree) -> np.ndarray:
  """Indices of members (leading axis) with any non-finite parameter."""
  return np.flatnonzero(~np.asarray(_finite_members(params)))


@jax.jit
def _take(tree: PyTree, idx: jax.Array) -> PyTree:
  return jax.tree.map(lambda x: x[idx], tree)


def take_members(tree: PyTree, idx) -> PyTree:
  """Members `idx` (integer sequence) of a member-stacked tree (typed keys ok), as one compiled
  gather; eager indexing would dispatch one gather per leaf."""
  return _take(tree, np.asarray(idx, np.int32))


def any_optimizer(tx_factory) -> optax.GradientTransformation:
  """An instance whose `update` serves every member: the hyperparameters live in the state."""
  return tx_factory(learning_rate=0.0, weight_decay=0.0)
