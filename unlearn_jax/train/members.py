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
from unlearn_jax.train import sharding, split_init
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
  # An eager init dispatches every op separately (slow for a ResNet); one compiled
  # init per architecture serves every seed.
  def build():
    model = models.get(model_name, width=width, num_classes=num_classes, **dict(model_kwargs))
    return compile_cache.jit(lambda key, x: Variables.from_flax(model.init(key, x, train=False)))
  return compile_cache.cached(("init", model_name, width, num_classes, model_kwargs), build)


def variable_structure(model_name: str, width: float, num_classes: int, sample_x,
                       **model_kwargs) -> jax.tree_util.PyTreeDef:
  """The tree structure of a model's variables at `width` (traced abstractly, nothing runs).

  Widths can share a padded member axis only if their structures are equal; they differ where a
  layer exists at some widths only (SCRUB's ResNet: the first block has an identity shortcut
  only when its width equals the 64-channel stem, p = 1).
  """
  model = models.get(model_name, width=width, num_classes=num_classes, **model_kwargs)
  return jax.tree.structure(jax.eval_shape(
      lambda x: Variables.from_flax(model.init(jax.random.key(0), x, train=False)), sample_x))


def init_members(model_name: str, members: Sequence[Member], num_classes: int, sample_x,
                 tx_factory, **model_kwargs) -> tuple[nn.Module, TrainState, PyTree]:
  """Initialises every member padded to the widest width.

  Returns the widest module (used to apply every member), the member-stacked TrainState, and the
  member-stacked active mask (1 on each member's own parameters). Member i's variables are those
  of `init_variables(model_name, members[i].width, ..., members[i].seed, ...)` zero-padded,
  bit for bit; they and the optimizer states come from one compiled program per bucket and
  optimizer that vmaps each width's init over its members (see `_bucket_initializer`).
  """
  members = list(members)
  if not members:
    raise ValueError("init_members needs at least one member.")
  widths = tuple(sorted({m.width for m in members}))
  model_kwargs_key = tuple(sorted(model_kwargs.items()))
  x_spec = jax.ShapeDtypeStruct(np.shape(sample_x), jnp.result_type(sample_x))
  initialize = _bucket_initializer(model_name, widths, num_classes, model_kwargs_key, x_spec,
                                   tx_factory)
  groups = [[i for i, m in enumerate(members) if m.width == w] for w in widths]
  seeds = tuple(_seed_array([members[i].seed for i in g]) for g in groups)
  concatenated = [i for g in groups for i in g]
  # order[j]: where member j sits in the width-grouped concatenation (None: already in order).
  order = (None if concatenated == list(range(len(members))) else
           np.argsort(np.asarray(concatenated)).astype(np.int32))
  hyperparams = np.asarray([(m.learning_rate, m.weight_decay) for m in members], np.float32)
  state, masks = initialize(seeds, sample_x, order, hyperparams)
  model = models.get(model_name, width=widths[-1], num_classes=num_classes, **model_kwargs)
  return model, state, masks


def _bucket_initializer(model_name: str, widths: tuple, num_classes: int, model_kwargs: tuple,
                        x_spec: jax.ShapeDtypeStruct, tx_factory):
  """`fn(seeds_by_width, sample_x, order, hyperparams) -> (TrainState, masks)`, member-stacked
  and padded; hyperparams: (S, 2) float32 learning rates and weight decays.

  Each width's members are initialised by vmapping that width's init over their seeds, padded
  to the widest shapes with their masks, concatenated and gathered back into member order, and
  given their optimizer states, in compiled code. One per bucket
  and optimizer factory, cached; jit retraces for other group sizes.
  """
  def build():
    bucket_width = widths[-1]
    inits = [_seeded_init(model_name, w, num_classes, model_kwargs) for w in widths]
    # One trace per width gives both the shapes and the program the split init cuts.
    jaxprs = [jax.make_jaxpr(init, return_shape=True)(
        jax.ShapeDtypeStruct((), _seed_array([0]).dtype), x_spec) for init in inits]
    wide_shapes = jaxprs[-1][1]
    for width, (_, shapes) in zip(widths[:-1], jaxprs):
      if jax.tree.structure(shapes) != jax.tree.structure(wide_shapes):
        raise ValueError(f"{model_name} at width {width} has other layers than at width "
                         f"{bucket_width}, so it cannot be zero-padded into it; train them in "
                         "separate buckets (train.width_buckets with `structure` splits them).")

    def finish(narrow_groups, order, hyperparams):
      """Pads each width's member-stacked variables, builds masks, restores member order, adds
      the optimizer states."""
      variables, masks = [], []
      for narrow in narrow_groups:
        n = jax.tree.leaves(narrow)[0].shape[0]
        variables.append(jax.vmap(lambda v: models.pad_variables(v, wide_shapes))(narrow))
        masks.append(jax.tree.map(
            lambda leaf, big: jnp.broadcast_to(_corner_ones(leaf.shape[1:], big.shape),
                                               (n, *big.shape)),
            narrow.params, wide_shapes.params))
      join = lambda *xs: (jnp.concatenate(xs) if order is None else
                          jnp.take(jnp.concatenate(xs), order, axis=0))
      return (jax.vmap(_opt_init(tx_factory))(jax.tree.map(join, *variables), hyperparams),
              jax.tree.map(join, *masks))

    if split and all(split_init.splittable(closed.jaxpr) for closed, _ in jaxprs):
      return split_init.split_initializer(jaxprs, finish)

    def initialize(seeds_by_width, sample_x, order, hyperparams):
      return finish([jax.vmap(init, in_axes=(0, None))(seeds, sample_x)
                     for init, seeds in zip(inits, seeds_by_width)], order, hyperparams)
    return compile_cache.jit(initialize)

  split = split_init.split_compile()
  return compile_cache.cached(("init_members", model_name, widths, num_classes, model_kwargs,
                               x_spec, tx_factory, split), build)


def _seed_array(seeds: Sequence[int]) -> np.ndarray:
  """Seeds as `jax.random.key(int)` converts each one: to int64, then JAX's integer type (int32
  unless jax_enable_x64, wrapping around), so that every member's key is the one it had alone."""
  return np.asarray(seeds, np.int64).astype(jax.dtypes.canonicalize_dtype(np.int64))


def _opt_init(tx_factory):
  """`fn(variables, hyperparams) -> TrainState` at step 0 of one member; hyperparams: its
  learning rate and weight decay."""
  def init_one(variables, hyperparams):
    tx = tx_factory(learning_rate=hyperparams[0], weight_decay=hyperparams[1])
    return TrainState(jnp.zeros((), jnp.int32), variables.params, variables.batch_stats,
                      tx.init(variables.params))
  return init_one


def _seeded_init(model_name: str, width: float, num_classes: int, model_kwargs: tuple):
  """`init(seed, sample_x) -> Variables` of one model at its own width (as `init_variables`)."""
  model = models.get(model_name, width=width, num_classes=num_classes, **dict(model_kwargs))
  return lambda seed, x: Variables.from_flax(
      model.init(jax.random.fold_in(jax.random.key(seed), 0), x, train=False))


def _corner_ones(shape, big_shape) -> jax.Array:
  """float32 ones on the `shape` corner of a `big_shape` array (`models.active_mask`'s leaf)."""
  return jnp.pad(jnp.ones(shape, jnp.float32), [(0, b - s) for s, b in zip(shape, big_shape)])


@compile_cache.exact_jit
def _finite_members(params: PyTree) -> jax.Array:
  # Compiled: op-by-op dispatch over every leaf would cost a dispatch per operation.
  leaves = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in jax.tree.leaves(params)]
  return jnp.stack(leaves).all(axis=0)


def diverged_members(params: PyTree) -> np.ndarray:
  """Indices of members (leading axis) with any non-finite parameter (checked in numpy on one
  CPU device, see `host_copyable`)."""
  if host_copyable(params):
    finite = np.stack([np.isfinite(np.asarray(x)).reshape(x.shape[0], -1).all(axis=1)
                       for x in jax.tree.leaves(params)]).all(axis=0)
  else:
    finite = np.asarray(_finite_members(params))
  return np.flatnonzero(~finite)


@compile_cache.exact_jit
def _take(tree: PyTree, idx: jax.Array) -> PyTree:
  return jax.tree.map(lambda x: x[idx], tree)


def take_members(tree: PyTree, idx) -> PyTree:
  """Members `idx` (integer sequence) of a member-stacked tree (typed keys ok), as one compiled
  gather (eager indexing would dispatch one gather per leaf); a numpy copy where
  `host_copyable` (compiled, a sweep makes one gather program per member count)."""
  idx = np.asarray(idx, np.int32)
  if host_copyable(tree):
    # device_put, not jnp.asarray: that compiles a copy program per shape.
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x)[idx]), tree)
  return _take(tree, idx)


def host_copyable(tree: PyTree) -> bool:
  """Whether numpy may stand in for a compiled program that only copies, counts or tests
  `tree`'s leaves: every leaf an array on one CPU device (or a numpy array), outside a trace,
  without a key or weak type that a numpy round trip would lose. Each such program compiled
  would be one more XLA:CPU compile per shape, for work numpy does at once, and the results are
  the same (they involve no rounding)."""
  return all(_host_copyable_leaf(x) for x in jax.tree.leaves(tree))


def _host_copyable_leaf(x) -> bool:
  return isinstance(x, np.ndarray) or (
      sharding.on_one_cpu_device(x) and not getattr(x, "weak_type", False)
      and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))


def any_optimizer(tx_factory) -> optax.GradientTransformation:
  """An instance whose `update` serves every member: the hyperparameters live in the state."""
  return tx_factory(learning_rate=0.0, weight_decay=0.0)
