"""Unlearning a member-stacked set of original models: the argument records and `unlearn`.

The member axis enumerates (seed x grid point) (x width in a padded bucket). `unlearn` takes
three small records besides the method, model and originals: which data (`ForgetTask`), what
varies along the member axis (`MemberInputs`) and how long and how it executes (`RunSettings`):

    originals, hparams, points = grid.expand_grid(originals, method.grid)
    state, metrics = unlearn(
        method, model, originals, ForgetTask(data, retain_idx, forget_idx),
        MemberInputs(repeat_members(seed_keys, len(points)), hparams,
                     repeat_members(active_mask, len(points))),
        RunSettings(epochs=5, batch_size=128, strategy=Strategy(0, "scan")))

Compiled steps and initialisers are cached per (model, phase, method factory, strategy, ...)
(`compile_cache`), so calling `unlearn` again with other hyperparameter values (same shapes)
compiles nothing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp

from unlearn_jax.methods.gradient import run_gradient_method
from unlearn_jax.methods.grid import member_hparams
from unlearn_jax.methods.method import Method
from unlearn_jax.methods.registry import get
from unlearn_jax.methods.retrain import retrain
from unlearn_jax.methods.ssd import ssd
from unlearn_jax.train.batches import check_pool
from unlearn_jax.train.drivers import Strategy
from unlearn_jax.train.state import TrainState, Variables


@dataclasses.dataclass(frozen=True)
class ForgetTask:
  """Which data: the train split on device and the index sets into it.

  Attributes:
    data: {'x', 'y'} device arrays of the train split.
    retain_idx, forget_idx: indices into `data` of the examples to keep and to forget, shared
      by every member (shape (P,)) or one row per member (shape (S, P)), e.g. shadow models
      that each forget their own subset.
  """
  data: Mapping[str, jax.Array]
  retain_idx: Any
  forget_idx: Any


@dataclasses.dataclass(frozen=True)
class MemberInputs:
  """What varies along the member axis (S members).

  Attributes:
    keys: (S,) typed keys: data order, random labels and augmentation derive from them by
      fold_in (give grid points of one seed the same key for common random numbers).
    hparams: {name: scalar or (S,) array}; missing names take the method's defaults.
    mask: member-stacked active mask (1 on each member's real parameters; None: all active).
    init_variables: member-stacked fresh (padded) initial variables: retrain starts from them,
      bad_teacher uses them as the random teacher.
  """
  keys: jax.Array
  hparams: Optional[Mapping[str, Any]] = None
  mask: Any = None
  init_variables: Optional[Variables] = None


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """How long and how it executes (static: these change shapes or programs).

  Attributes:
    epochs: number of epochs (None: the method's).
    batch_size: batch size of retain passes (and of the importance passes of SalUn and SSD).
    forget_batch_size: batch size of forget batches (None: batch_size).
    strategy: how members and steps are executed (train.drivers.Strategy).
    augment: crop+flip augmentation of image batches (gradient methods and retrain).
  """
  epochs: Optional[int] = None
  batch_size: int = 128
  forget_batch_size: Optional[int] = None
  strategy: Strategy = Strategy()
  augment: bool = False


def _as_variables(tree, what: str) -> Optional[Variables]:
  if tree is None or isinstance(tree, Variables):
    return tree
  if isinstance(tree, TrainState):
    return tree.variables
  raise TypeError(f"{what} must be train.Variables(params, batch_stats) (or a TrainState), got "
                  f"{type(tree).__name__}.")


def unlearn(method: Method | str, model, original: Variables, task: ForgetTask,
            members: MemberInputs, run: RunSettings = RunSettings()
            ) -> tuple[TrainState, dict]:
  """Unlearns every member of a member-stacked set of original models.

  Args:
    method: a `Method` or a registered name.
    model: the (widest) flax module applied to every member.
    original: member-stacked original variables.
    task: the data and the retain / forget indices.
    members: per-member keys, hyperparameters, active mask and initial variables.
    run: epochs, batch sizes, execution strategy, augmentation.

  Returns:
    (TrainState with member axis S, metrics {name: (S,)}): for gradient methods, per member, the
    mean of each '<phase>/<term>' loss over the last epoch that member's phase ran; for SSD
    'selected_fraction'; for retrain the trainer's last-epoch 'loss' and 'error'.
  """
  if isinstance(method, str):
    method = get(method)
  original = _as_variables(original, "original")
  init_variables = _as_variables(members.init_variables, "members.init_variables")
  keys = members.keys
  num = keys.shape[0]
  num_original = jax.tree.leaves(original.params)[0].shape[0]
  if num_original != num:
    raise ValueError(f"original has {num_original} members but keys has {num}; repeat "
                     "originals and keys along the grid (expand_grid).")
  hp = member_hparams(method, members.hparams, num)
  epochs = method.epochs if run.epochs is None else int(run.epochs)
  retain_idx = check_pool(task.retain_idx, num)
  forget_idx = check_pool(task.forget_idx, num)
  data = {"x": task.data["x"], "y": task.data["y"]}
  mask = members.mask
  if mask is None:
    mask = jax.tree.map(jnp.ones_like, original.params)

  if method.kind == "retrain":
    return retrain(method, model, init_variables, data, retain_idx, keys, hp, epochs=epochs,
                   batch_size=run.batch_size, strategy=run.strategy, augment=run.augment)
  if method.kind == "ssd":
    return ssd(method, model, original, data, retain_idx, forget_idx, mask, hp,
               batch_size=run.batch_size, strategy=run.strategy)
  return run_gradient_method(
      method, model, original, data, retain_idx, forget_idx, keys, hp, mask, init_variables,
      epochs=epochs, batch_size=run.batch_size,
      forget_batch_size=run.forget_batch_size or run.batch_size, strategy=run.strategy,
      augment=run.augment)
