"""Hyperparameter grids on the member axis: seeds x grid points as one axis of members.

Every hyperparameter is a (S,) array, lifted into the optimizer state or carried as loss /
schedule data, so one compiled step serves the whole grid:

    originals, hparams, points = expand_grid(originals, method.grid)   # S seeds -> S * G members
    keys = repeat_members(seed_keys, len(points))                       # same data order per seed
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Optional, Protocol, Sequence

import jax
import numpy as np

from unlearn_jax.train.members import take_members

PyTree = Any


class NamedDefaults(Protocol):
  """What `member_hparams` reads of a method (`methods.Method` has both; no import needed)."""
  name: str
  defaults: Mapping[str, float]


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
  """All combinations of a {name: values} grid, last name varying fastest."""
  names = list(grid)
  return [dict(zip(names, map(float, vals))) for vals in itertools.product(*grid.values())]


def repeat_members(tree: PyTree, repeats: int) -> PyTree:
  """Repeats every member `repeats` times in place: member s -> s * repeats + g (typed keys ok)."""
  num = jax.tree.leaves(tree)[0].shape[0]
  return take_members(tree, np.repeat(np.arange(num), repeats))


def expand_grid(tree: PyTree, grid: Mapping[str, Sequence[float]]
                ) -> tuple[PyTree, dict[str, jax.Array], list[dict[str, float]]]:
  """Expands S originals x a grid of G points into S * G members (seed-major).

  Returns:
    (tree repeated to S * G members, hyperparameters {name: (S * G,) float32}, the G points).
    Member s * G + g is original s with grid point g.
  """
  points = grid_points(grid)
  num = jax.tree.leaves(tree)[0].shape[0]
  # Made on the host and put on the device as they are: device conversions (jnp.asarray
  # included) compile one program per shape.
  hparams = {k: jax.device_put(np.tile(np.float32([p[k] for p in points]), num)) for k in grid}
  return repeat_members(tree, len(points)), hparams, points


def member_hparams(method: NamedDefaults, hparams: Optional[Mapping[str, Any]], num: int
                   ) -> dict[str, jax.Array]:
  """The method's defaults overridden by `hparams`, each as a (num,) float32 array."""
  hparams = dict(hparams or {})
  unknown = sorted(set(hparams) - set(method.defaults))
  if unknown:
    raise ValueError(f"Unknown hyperparameter(s) {unknown} for method {method.name!r}; "
                     f"allowed: {sorted(method.defaults)}.")
  out = {}
  for k, default in method.defaults.items():
    # On the host: device conversions compile a program per shape (np.asarray(..., dtype) of a
    # jax array converts on the device).
    v = np.asarray(hparams.get(k, default)).astype(np.float32)
    if v.ndim == 0:
      v = np.full((num,), v)
    if v.shape != (num,):
      raise ValueError(f"hyperparameter {k!r} must be a scalar or have shape ({num},) (one value "
                       f"per member), got {v.shape}.")
    out[k] = jax.device_put(v)   # jnp.asarray would compile a copy program per shape
  return out
