"""Running an unlearning method on a member-stacked set of original models.

The member axis enumerates (seed x grid point) (x width in a padded bucket): every hyperparameter
is a (S,) array, lifted into the optimizer state (optax.inject_hyperparams) or carried as loss /
schedule data, so one compiled step serves the whole grid. Steps run through
`train.drivers.Driver`, so methods get the same execution strategies as training.

    originals, hparams, points = expand_grid(originals, method.grid)   # S seeds -> S * G members
    keys = repeat_members(seed_keys, len(points))                       # same data order per seed
    state, metrics = unlearn(method, model, originals, data, retain_idx, forget_idx, keys,
                             hparams, repeat_members(active_mask, len(points)), epochs=5,
                             batch_size=128, strategy=Strategy(0, "scan"))

Compiled step functions and initialisers are cached per (model, phase, method factory, strategy,
...), so calling `unlearn` again with other hyperparameter values (same shapes) compiles nothing.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from unlearn_jax.data.augment import augment_batch
from unlearn_jax.methods import importance
from unlearn_jax.methods import terms as terms_lib
from unlearn_jax.methods.registry import CONTEXT_ARGS, Method, Phase, get
from unlearn_jax.train import drivers, optimizers, trainer
from unlearn_jax.train.members import any_optimizer, take_members
from unlearn_jax.train.state import TrainState, apply_model

PyTree = Any


# ------------------------------------------------------------------------------ member-axis grid

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
  hparams = {k: jnp.asarray(np.tile([p[k] for p in points], num), jnp.float32) for k in grid}
  return repeat_members(tree, len(points)), hparams, points


def member_hparams(method: Method, hparams: Optional[Mapping[str, Any]], num: int
                   ) -> dict[str, jax.Array]:
  """The method's defaults overridden by `hparams`, each as a (num,) float32 array."""
  hparams = dict(hparams or {})
  unknown = sorted(set(hparams) - set(method.defaults))
  if unknown:
    raise ValueError(f"Unknown hyperparameter(s) {unknown} for method {method.name!r}; "
                     f"allowed: {sorted(method.defaults)}.")
  out = {}
  for k, default in method.defaults.items():
    v = jnp.asarray(hparams.get(k, default), jnp.float32)
    if v.ndim == 0:
      v = jnp.full((num,), v)
    if v.shape != (num,):
      raise ValueError(f"hyperparameter {k!r} must be a scalar or have shape ({num},) (one value "
                       f"per member), got {v.shape}.")
    out[k] = v
  return out


# ------------------------------------------------------------------------------------- batches

def _stream(key, pool_idx, batch_size: int, steps: int):
  """steps * batch_size indices: permutations of the pool from `key`, concatenated as needed."""
  need = steps * batch_size
  reps = -(-need // pool_idx.shape[0])
  perms = [jax.random.permutation(jax.random.fold_in(key, r), pool_idx) for r in range(reps)]
  return jnp.concatenate(perms)[:need].reshape(steps, batch_size)


@jax.jit
def _phase_keys(keys, phase_index, epoch):
  return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1 + phase_index), epoch))(
      keys)


_stream_members = jax.jit(
    lambda keys, stream, pool_idx, batch_size, steps: jax.vmap(
        lambda k: _stream(jax.random.fold_in(k, stream), pool_idx, batch_size, steps))(keys),
    static_argnums=(3, 4))


@jax.jit
def _step_keys(phase_keys):
  return jax.vmap(lambda k: jax.random.fold_in(k, 2))(phase_keys)


# --------------------------------------------------------------------------------- step function

def _lifted(method: Method):
  return optax.inject_hyperparams(method.tx, hyperparam_dtype=jnp.float32)


def _placeholder_context(method: Method) -> dict:
  """Context arguments for the shared `update` instance: only their kind must match init's."""
  out = {}
  for name in method.context_args:
    out[name] = None if name == "saliency_mask" else 1.0
  return out


def _any_tx(method: Method) -> optax.GradientTransformationExtraArgs:
  """One instance serving every member: numeric values are read from each member's state."""
  return _lifted(method)(**{k: 0.0 for k in method.tx_hparam_names},
                         **_placeholder_context(method))


def make_phase_step(model, method: Method, phase: Phase, num_classes: int, augment: bool):
  """`step(carry, data, inputs, key)` for ONE model, carry = (TrainState, context).

  context: {'hp': {name: scalar}, 'teacher': {params, batch_stats}?, 'bad_teacher': ...?}.
  inputs: {'retain': (B,) idx?, 'forget': (B_f,) idx?, 'on': bool? (gated phases)}.
  """
  tx = _any_tx(method)
  groups = terms_lib.term_groups(phase.terms)
  by_group = {g: [t for t in phase.terms if terms_lib.get_term(t).group == g] for g in groups}
  gated = phase.while_epoch_below is not None

  def step(carry, data, inputs, key):
    state, ctx = carry
    xs, refs = {}, {}
    for gi, g in enumerate(groups):
      idx = inputs[g]
      x = data["x"][idx]
      if augment:
        x = augment_batch(jax.random.fold_in(key, gi), x)
      needs = terms_lib.term_needs(by_group[g])
      r = {"y": data["y"][idx]}
      if "random_labels" in needs:
        r["random_y"] = jax.random.randint(jax.random.fold_in(key, 10 + gi), idx.shape, 0,
                                           num_classes)
      for who in ("teacher", "bad_teacher"):
        if who in needs:
          t = ctx[who]
          logits, _ = apply_model(model, t["params"], t["batch_stats"], x, bn_train=False)
          r[f"{who}_logits"] = jax.lax.stop_gradient(logits)
      if "temperature" in needs:
        r["temperature"] = ctx["hp"]["temperature"]
      xs[g], refs[g] = x, r

    def group_losses(params, g, batch_stats):
      logits, batch_stats = apply_model(model, params, batch_stats, xs[g], phase.bn_train)
      return {t: terms_lib.get_term(t).fn(logits, refs[g]) for t in by_group[g]}, batch_stats

    # One vjp per group, so each term's backward pass runs through its own group's graph only.
    # BN running averages see the retain batch, then the forget batch; in train mode a batch is
    # normalised with its own statistics, so the order does not change any loss.
    grads, losses, batch_stats = {}, {}, state.batch_stats
    for g in groups:
      g_grads, g_losses, batch_stats = terms_lib.per_term_grads(
          lambda p, g=g, bs=batch_stats: group_losses(p, g, bs), state.params)
      grads.update(g_grads)
      losses.update(g_losses)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(state.step + 1, params, batch_stats, opt_state)
    if gated:
      new = jax.tree.map(lambda a, b: jnp.where(inputs["on"], a, b), new, state)
    return (new, ctx), losses

  return step


_CACHE: dict = {}


def _cached(key, build):
  if key not in _CACHE:
    _CACHE[key] = build()
  return _CACHE[key]


def _phase_driver(model, method, phase, num_classes, augment, strategy) -> drivers.Driver:
  key = ("phase", model, method.tx, phase, num_classes, augment, strategy)
  return _cached(key, lambda: drivers.Driver(
      make_phase_step(model, method, phase, num_classes, augment), strategy))


def _opt_init(method: Method):
  """jit(vmap(init)) of the lifted optimizer: per-member hyperparameters and context."""
  def build():
    lifted = _lifted(method)

    def init_one(params, hp, member_ctx, shared_ctx):
      return lifted(**hp, **member_ctx, **shared_ctx).init(params)

    return jax.jit(jax.vmap(init_one, in_axes=(0, 0, 0, None)))
  return _cached(("opt_init", method.tx), build)


# ---------------------------------------------------------------------------------------- runner

def _variables(original) -> tuple[PyTree, PyTree]:
  if isinstance(original, Mapping):
    return original["params"], original.get("batch_stats", {}) or {}
  return original.params, (original.batch_stats or {})


@jax.jit
def _count_active(mask):
  return sum(jnp.sum(x.reshape(x.shape[0], -1), axis=1) for x in jax.tree.leaves(mask))


def unlearn(method: Method | str, model, original, data: Mapping[str, jax.Array], retain_idx,
            forget_idx, keys: jax.Array, hparams: Optional[Mapping[str, Any]] = None,
            mask: Optional[PyTree] = None, *, epochs: Optional[int] = None,
            batch_size: int = 128, forget_batch_size: Optional[int] = None,
            strategy: drivers.Strategy = drivers.Strategy(), augment: bool = False,
            init_variables=None) -> tuple[TrainState, dict]:
  """Unlearns every member of a member-stacked set of original models.

  Args:
    method: a `Method` or a registered name.
    model: the (widest) flax module applied to every member.
    original: member-stacked original variables: {'params', 'batch_stats'} or a TrainState.
    data: {'x', 'y'} device arrays of the train split; `retain_idx`/`forget_idx` index them.
    keys: (S,) typed keys, one per member: data order, random labels and augmentation derive from
      them by fold_in (give grid points of one seed the same key for common random numbers).
    hparams: {name: scalar or (S,) array}; missing names take the method's defaults.
    mask: member-stacked active mask (1 on each member's real parameters; None: all active).
    epochs: number of epochs (default: the method's).
    batch_size: batch size of retain passes (and of the importance passes of SalUn and SSD).
    forget_batch_size: batch size of forget batches (default batch_size).
    strategy: how members and steps are executed (train.drivers.Strategy).
    augment: crop+flip augmentation of image batches (gradient methods and retrain).
    init_variables: member-stacked fresh (padded) initial variables: retrain starts from them,
      bad_teacher uses them as the random teacher.

  Returns:
    (TrainState with member axis S, metrics {name: (S,)}): for gradient methods the mean of each
    '<phase>/<term>' loss over the last epoch the phase ran; for SSD 'selected_fraction'; for
    retrain the trainer's last-epoch 'loss' and 'error'.
  """
  if isinstance(method, str):
    method = get(method)
  params, batch_stats = _variables(original)
  num = keys.shape[0]
  if jax.tree.leaves(params)[0].shape[0] != num:
    raise ValueError(f"original has {jax.tree.leaves(params)[0].shape[0]} members but keys has "
                     f"{num}; repeat originals and keys along the grid (expand_grid).")
  hp = member_hparams(method, hparams, num)
  epochs = method.epochs if epochs is None else int(epochs)
  retain_idx = jnp.asarray(retain_idx, jnp.int32)
  forget_idx = jnp.asarray(forget_idx, jnp.int32)
  data = {"x": data["x"], "y": data["y"]}
  if mask is None:
    mask = jax.tree.map(jnp.ones_like, params)

  if method.kind == "retrain":
    return _retrain(method, model, data, retain_idx, keys, hp, init_variables, epochs=epochs,
                    batch_size=batch_size, strategy=strategy, augment=augment)
  if method.kind == "ssd":
    return _ssd(method, model, params, batch_stats, data, retain_idx, forget_idx, mask, hp,
                batch_size=batch_size, strategy=strategy)

  num_classes = int(model.num_classes)
  forget_batch_size = forget_batch_size or batch_size
  sizes = {"retain": (retain_idx, batch_size), "forget": (forget_idx, forget_batch_size)}
  for name, (idx, _) in sizes.items():
    if len(idx) == 0 and any(name in terms_lib.term_groups(p.terms) for p in method.phases):
      raise ValueError(f"method {method.name!r} needs a non-empty {name} set.")
  phase_steps = [math.ceil(len(sizes[p.pool][0]) / sizes[p.pool][1]) for p in method.phases]
  steps_per_epoch = sum(phase_steps)

  needs = terms_lib.term_needs([t for p in method.phases for t in p.terms])
  ctx = {"hp": {k: hp[k] for k in method.data_hparam_names}}
  if "teacher" in needs:
    ctx["teacher"] = {"params": params, "batch_stats": batch_stats}
  if "bad_teacher" in needs:
    if init_variables is None:
      raise ValueError(f"method {method.name!r} needs init_variables (member-stacked, padded "
                       "randomly initialised variables) for its random teacher.")
    bad_params, bad_stats = _variables(init_variables)
    ctx["bad_teacher"] = {"params": bad_params, "batch_stats": bad_stats}

  member_ctx, shared_ctx = {}, {}
  if "saliency_mask" in method.context_args:
    member_ctx["saliency_mask"] = importance.saliency_masks(
        model, params, batch_stats, data, forget_idx, mask, hp["salient_fraction"],
        batch_size=batch_size, strategy=strategy)
  if "num_active" in method.context_args:
    member_ctx["num_active"] = _count_active(mask)
  if "steps_per_epoch" in method.context_args:
    shared_ctx["steps_per_epoch"] = steps_per_epoch
  if "total_steps" in method.context_args:
    shared_ctx["total_steps"] = steps_per_epoch * epochs
  tx_hp = {k: hp[k] for k in method.tx_hparam_names}
  opt_state = _opt_init(method)(params, tx_hp, member_ctx, shared_ctx)
  state = TrainState(jnp.zeros((num,), jnp.int32), params, batch_stats, opt_state)

  metrics = {}
  for epoch in range(epochs):
    for i, (phase, steps) in enumerate(zip(method.phases, phase_steps)):
      inputs = {}
      if phase.while_epoch_below is not None:
        on = np.asarray(epoch < hp[phase.while_epoch_below])
        if not on.any():
          continue
        inputs["on"] = jnp.broadcast_to(jnp.asarray(on)[:, None], (num, steps))
      pkeys = _phase_keys(keys, i, epoch)
      for stream, g in enumerate(terms_lib.term_groups(phase.terms)):
        idx, bs = sizes[g]
        inputs[g] = _stream_members(pkeys, stream, idx, bs, steps)
      driver = _phase_driver(model, method, phase, num_classes, augment, strategy)
      (state, ctx), step_metrics = driver((state, ctx), data, inputs, _step_keys(pkeys))
      for t, v in step_metrics.items():
        metrics[f"{phase.name}/{t}"] = v.mean(axis=1)
  return state, metrics


def _retrain(method, model, data, retain_idx, keys, hp, init_variables, *, epochs, batch_size,
             strategy, augment):
  if init_variables is None:
    raise ValueError("retrain needs init_variables: member-stacked (padded) initial variables, "
                     "e.g. from train.init_members.")
  params, batch_stats = _variables(init_variables)
  factory = optimizers.make_optimizer(
      "sgd", method.options["schedule"], total_steps=epochs * (len(retain_idx) // batch_size),
      momentum=method.options["momentum"])
  opt_state = jax.vmap(lambda p, lr, wd: factory(learning_rate=lr, weight_decay=wd).init(p))(
      params, hp["learning_rate"], hp["weight_decay"])
  state = TrainState(jnp.zeros((keys.shape[0],), jnp.int32), params, batch_stats, opt_state)
  return trainer.train(model, any_optimizer(factory), state, data, retain_idx, keys,
                       epochs=epochs, batch_size=batch_size, augment=augment, strategy=strategy,
                       name="retrain")


_ssd_dampen_members = jax.jit(jax.vmap(importance.ssd_dampen))


def _ssd(method, model, params, batch_stats, data, retain_idx, forget_idx, mask, hp, *,
         batch_size, strategy):
  reference = method.options["reference_set"]
  if reference not in ("train", "retain"):
    raise ValueError(f"Unknown SSD reference_set {reference!r}; allowed: 'train', 'retain'.")
  ref_idx = (jnp.concatenate([retain_idx, forget_idx]) if reference == "train" else retain_idx)
  forget_imp = importance.ssd_importances(model, params, batch_stats, data, forget_idx,
                                          batch_size=batch_size, strategy=strategy)
  ref_imp = importance.ssd_importances(model, params, batch_stats, data, ref_idx,
                                       batch_size=batch_size, strategy=strategy)
  new_params, selected = _ssd_dampen_members(params, forget_imp, ref_imp, mask,
                                             hp["selection_weighting"],
                                             hp["dampening_constant"])
  fraction = _count_active(selected) / _count_active(mask)
  state = TrainState(jnp.zeros(fraction.shape, jnp.int32), new_params, batch_stats, ())
  return state, {"selected_fraction": fraction}


__all__ = ["CONTEXT_ARGS", "expand_grid", "grid_points", "make_phase_step", "member_hparams",
           "repeat_members", "unlearn"]
