"""Validation-based hyperparameter selection for unlearning, per goal and trade-off weight.

The study tunes each method's hyperparameters per width and goal on validation data: an objective
mixes validation error (utility) with a goal term on the forget set, weighted by lambda in
{0.2, 0.4, 0.6}, and the grid point with the smallest objective is chosen. Test data must not
influence the choice, so `select` accepts only `val_error`, `forget_error` and, for objectives
that ask for them, `retain_error` and the retrained reference's errors (`reference`, with the
keys 'retain', 'forget', 'val' only), as keyword-only arguments: passing a test error
positionally is impossible and passing it by name fails. Read test metrics only afterwards, at
the chosen index, with `take_selected`.

Selection runs on the host (numpy): it is a handful of comparisons, and returning plain integer
indices keeps it out of any compiled program.
"""
from __future__ import annotations

import inspect
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from unlearn_jax.registry import Registry

# A (val_error, forget_error, lam) -> objective function; lower is better. It must broadcast.
# It may also take keyword arguments from EXTRA_INPUTS, which `select` then requires.
Objective = Callable[..., np.ndarray]
EXTRA_INPUTS = ("retain_error", "reference")
REFERENCE_SPLITS = ("retain", "forget", "val")

DEFAULT_LAMBDAS = (0.2, 0.4, 0.6)


def privacy_objective(val_error, forget_error, lam):
  """(1 - lam) * Err_val + lam * |Err_forget - Err_val|: forget examples should look unseen."""
  return (1.0 - lam) * val_error + lam * np.abs(forget_error - val_error)


def bias_removal_objective(val_error, forget_error, lam):
  """(1 - lam) * Err_val - lam * Err_forget: forget labels should stop being reproduced."""
  return (1.0 - lam) * val_error - lam * forget_error


def retrain_matching_objective(val_error, forget_error, lam, *, retain_error, reference):
  """(1 - lam) * Err_val + lam * mean over retain, forget, val of |Err - Err of the retrained
  reference of the same seed|: the unlearned model should look like retraining on every split
  (Deep Unlearn's selection objective, Cadet et al. 2024, is the lam = 1 case)."""
  gap = (np.abs(retain_error - reference["retain"]) + np.abs(forget_error - reference["forget"])
         + np.abs(val_error - reference["val"])) / 3.0
  return (1.0 - lam) * val_error + lam * gap


OBJECTIVES: Registry[Objective] = Registry("tuning objective", {
    "privacy": privacy_objective,
    "bias_removal": bias_removal_objective,
    "retrain_matching": retrain_matching_objective,
})


def register_objective(name: str, objective: Objective) -> None:
  """Adds an objective to the registry (lower is better); refuses to overwrite a name silently."""
  OBJECTIVES.register(name, objective)


def get_objective(name: str) -> Objective:
  """Looks an objective up by name; unknown names raise ValueError listing the allowed ones."""
  return OBJECTIVES.get(name)


def needs(objective: str) -> tuple[str, ...]:
  """The inputs beyond val_error and forget_error that `objective` asks for (EXTRA_INPUTS)."""
  params = inspect.signature(get_objective(objective)).parameters
  return tuple(name for name in EXTRA_INPUTS if name in params)


def objective_values(objective: str, lam: float, *, val_error, forget_error, retain_error=None,
                     reference: Optional[Mapping[str, object]] = None) -> np.ndarray:
  """The objective at every grid point, `(..., G)`; non-finite where an input is non-finite.

  `retain_error` (like `val_error`) and `reference` ({'retain', 'forget', 'val'}: the retrained
  reference's errors, broadcastable against `val_error`, e.g. `(S, 1)`) are required by the
  objectives that ask for them (`needs`) and ignored by the others.
  """
  if not 0.0 <= lam <= 1.0:
    raise ValueError(f"lambda must lie in [0, 1], got {lam}")
  as_array = lambda v: np.asarray(v, np.float64)
  extra = {}
  for name in needs(objective):
    value = {"retain_error": retain_error, "reference": reference}[name]
    if value is None:
      raise ValueError(f"objective {objective!r} needs {name}.")
    if name == "reference":
      if sorted(value) != sorted(REFERENCE_SPLITS):
        raise ValueError(f"reference has splits {sorted(value)}; expected exactly "
                         f"{list(REFERENCE_SPLITS)} (never test data).")
      value = {k: as_array(v) for k, v in value.items()}
    else:
      value = as_array(value)
    extra[name] = value
  return np.asarray(get_objective(objective)(as_array(val_error), as_array(forget_error), lam,
                                             **extra))


def select(objective: str, lam: float, *, val_error, forget_error, retain_error=None,
           reference=None, finite_mask=None, raise_if_all_diverged: bool = False) -> np.ndarray:
  """Index of the best grid point, per seed.

  Args:
    objective: registered objective name ('privacy', 'bias_removal', ...).
    lam: trade-off weight in [0, 1]; larger weighs the goal more.
    val_error: `(G,)` or `(S, G)`: validation error at each grid point (last axis), optionally for
      each of S seeds (leading axes, any number).
    forget_error: forget-set error, same shape as `val_error` (or broadcastable).
    retain_error, reference: for objectives that need them (see `objective_values`).
    finite_mask: optional booleans, False for diverged runs: the shape of the grid of
      objective values (`(S, G)` like `val_error`: per seed and grid point) or that shape
      without the grid axis (`(S,)`: per seed, every grid point of the seed). Other shapes
      raise ValueError. Grid points whose objective is non-finite are excluded whether or not
      the mask says so.
    raise_if_all_diverged: if True, a seed with no usable grid point raises ValueError; by default
      its index is -1, so one bad seed does not abort a whole sweep (`take_selected` turns -1
      into NaN).

  Returns:
    int64 array of shape `val_error.shape[:-1]` (a 0-d array for a single grid): the lowest index
    among the minimisers (ties go to the first grid point, deterministically), or -1.
  """
  values = objective_values(objective, lam, val_error=val_error, forget_error=forget_error,
                            retain_error=retain_error, reference=reference)
  usable = np.isfinite(values)
  if finite_mask is not None:
    usable &= _grid_mask(finite_mask, values.shape)
  # +inf can never beat a usable point, and argmin returns the first minimiser, which is the
  # documented tie rule.
  best = np.argmin(np.where(usable, values, np.inf), axis=-1)
  none_usable = ~np.any(usable, axis=-1)
  if raise_if_all_diverged and np.any(none_usable):
    raise ValueError(f"every grid point diverged for seeds at {np.argwhere(none_usable).tolist()}")
  return np.where(none_usable, -1, best).astype(np.int64)


def _grid_mask(finite_mask, shape: tuple[int, ...]) -> np.ndarray:
  """`finite_mask` as a mask over the grid values: `shape` as is, `shape[:-1]` per seed."""
  mask = np.asarray(finite_mask, bool)
  if mask.shape == shape:
    return mask
  if mask.shape == shape[:-1]:
    # One flag per seed: it applies along that seed's grid axis (not broadcast over it).
    return np.broadcast_to(mask[..., None], shape)
  raise ValueError(f"finite_mask has shape {mask.shape}; expected {shape} (per seed and grid "
                   f"point, like val_error) or {shape[:-1]} (per seed).")


def select_per_lambda(objective: str, *, val_error, forget_error, retain_error=None,
                      reference=None, lams: Sequence[float] = DEFAULT_LAMBDAS, finite_mask=None,
                      raise_if_all_diverged: bool = False) -> np.ndarray:
  """`select` for each lambda, stacked: `(L, *val_error.shape[:-1])` indices."""
  return np.stack([select(objective, lam, val_error=val_error, forget_error=forget_error,
                          retain_error=retain_error, reference=reference,
                          finite_mask=finite_mask, raise_if_all_diverged=raise_if_all_diverged)
                   for lam in lams])


def take_selected(values, index) -> np.ndarray:
  """Reads `values[..., index]` per seed, NaN where the index is -1 (all diverged).

  Args:
    values: `(..., G)` any metric over the grid (test error may be read here, after selection).
    index: `values.shape[:-1]` indices from `select` (broadcastable, e.g. `(L, S)` against
      `(S, G)` values).

  Returns:
    Float64 array of the broadcast leading shape.
  """
  values = np.asarray(values, np.float64)
  index = np.asarray(index, np.int64)
  lead = np.broadcast_shapes(values.shape[:-1], index.shape)
  values = np.broadcast_to(values, lead + values.shape[-1:])
  index = np.broadcast_to(index, lead)
  picked = np.take_along_axis(values, np.maximum(index, 0)[..., None], axis=-1)[..., 0]
  return np.where(index < 0, np.nan, picked)
