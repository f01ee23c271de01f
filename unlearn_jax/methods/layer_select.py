"""Which layers a method trains, re-initialises or negates, per member.

CF-k and EU-k train only the last k layers (hyperparameter `last_layers`), weight negation
negates one layer (`negated_layer`, 0 = the first); layers are `models.layers.layer_groups`.
The choice is a hyperparameter, so the members of one program may choose differently: every
mask here is member-stacked data, built on the host from the members' values.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.train.state import Variables

PyTree = Any
Groups = Sequence[Sequence[str]]


def layer_indices(values, num_layers: int, name: str, low: int) -> np.ndarray:
  """The members' values of hyperparameter `name` as integers in [low, low + num_layers - 1]."""
  values = np.atleast_1d(np.asarray(values, np.float64))
  high = low + num_layers - 1
  bad = values[(values != np.round(values)) | (values < low) | (values > high)]
  if bad.size:
    raise ValueError(f"{name}={bad[0]:g} is not a layer count/index of this model: allowed "
                     f"integers {low}..{high} ({num_layers} layers).")
  return values.astype(np.int64)


def _mask(tree: PyTree, groups: Groups, chosen: np.ndarray, names_of=lambda g: g) -> PyTree:
  """{top-level name: subtree} with leaves True (broadcast to the leaf) where the member chose
  the name's layer; `chosen` is (S, num_layers) bool."""
  layer_of = {n: i for i, g in enumerate(groups) for n in names_of(g)}

  def fill(name, sub):
    on = chosen[:, layer_of[name]] if name in layer_of else np.zeros(len(chosen), bool)
    return jax.tree.map(
        lambda leaf: jnp.asarray(np.broadcast_to(on.reshape((-1,) + (1,) * (leaf.ndim - 1)),
                                                 leaf.shape)), sub)

  return {name: fill(name, sub) for name, sub in tree.items()}


def last_layers_mask(tree: PyTree, groups: Groups, k) -> PyTree:
  """Member-stacked bool tree like `tree`: True on the variables of each member's last k[s]
  layers (k per member, shape (S,), or one value for all)."""
  k = layer_indices(k, len(groups), "last_layers", 1)
  chosen = np.arange(len(groups))[None, :] >= len(groups) - k[:, None]
  return _mask(tree, groups, chosen)


def negation_mask(tree: PyTree, groups: Groups, j) -> PyTree:
  """True on the weight module (not its BatchNorm) of each member's layer j[s]."""
  j = layer_indices(j, len(groups), "negated_layer", 0)
  chosen = np.arange(len(groups))[None, :] == j[:, None]
  return _mask(tree, groups, chosen, names_of=lambda g: g[:1])


def where(mask: PyTree, on: PyTree, off: PyTree) -> PyTree:
  return jax.tree.map(lambda m, a, b: jnp.where(m, a, b), mask, on, off)


def reinit_last_layers(original: Variables, fresh: Variables, groups: Groups, k) -> Variables:
  """EU-k's start: each member's last k layers (parameters and BatchNorm statistics) from its
  fresh initialisation, the rest from its original."""
  return Variables(where(last_layers_mask(original.params, groups, k), fresh.params,
                         original.params),
                   where(last_layers_mask(original.batch_stats, groups, k), fresh.batch_stats,
                         original.batch_stats))


def negate_layer(original: Variables, groups: Groups, j) -> Variables:
  """Weight negation's start: each member's layer j multiplied by -1 (kernel and bias)."""
  params = original.params
  return Variables(where(negation_mask(params, groups, j), jax.tree.map(jnp.negative, params),
                         params), original.batch_stats)
