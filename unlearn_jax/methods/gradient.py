"""Running a gradient method: epochs of phases, each phase a driven pass of `phase_step`.

Per epoch and phase every member draws its own batches (train.batches: phase key
fold_in(fold_in(key, 1 + phase), epoch), one stream per batch group); a gated phase (SCRUB's max
pass) runs only for the members whose gate is on, the others keep their state.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache
from unlearn_jax.methods import importance, layer_select
from unlearn_jax.methods import terms as terms_lib
from unlearn_jax.methods.method import Method
from unlearn_jax.methods.phase_step import optimizer_init, phase_driver
from unlearn_jax.models.layers import layer_groups
from unlearn_jax.train.batches import fold_in_members, member_batches
from unlearn_jax.train.state import TrainState, Variables


def _phase_keys(keys, phase_index: int, epoch: int):
  return fold_in_members(fold_in_members(keys, 1 + phase_index), epoch)


def _layer_groups(model, data):
  x = data["x"][:1]
  return compile_cache.cached(("layer_groups", model, x.shape, str(x.dtype)),
                              lambda: layer_groups(model, x))


def _check_init(method: Method, init_variables, purpose: str):
  if init_variables is None:
    raise ValueError(f"method {method.name!r} needs init_variables (member-stacked, padded "
                     f"randomly initialised variables) for {purpose}.")


def _start(method: Method, model, data, original: Variables, init_variables, hp) -> Variables:
  """Where the phases begin (Method.start), per member."""
  if method.start == "original":
    return original
  groups = _layer_groups(model, data)
  if method.start == "negate_layer":
    return layer_select.negate_layer(original, groups, hp["negated_layer"])
  _check_init(method, init_variables, "its re-initialised layers")
  return layer_select.reinit_last_layers(original, init_variables, groups, hp["last_layers"])


def run_gradient_method(method: Method, model, original: Variables, data, retain_idx,
                        forget_idx, keys, hp, mask, init_variables: Variables | None, *,
                        epochs: int, batch_size: int, forget_batch_size: int, strategy,
                        augment: bool) -> tuple[TrainState, dict]:
  """Unlearns every member with `method`'s phases; see `methods.unlearn` for the arguments.

  Returns:
    (state, metrics): metrics '<phase>/<term>' (S,) are, per member, the mean loss over the last
    epoch in which that member's phase ran (NaN if it never ran for that member).
  """
  num = keys.shape[0]
  sizes = {"retain": (retain_idx, batch_size), "forget": (forget_idx, forget_batch_size)}
  for name, (idx, _) in sizes.items():
    if idx.shape[-1] == 0 and any(name in terms_lib.batch_groups(p.terms) for p in method.phases):
      raise ValueError(f"method {method.name!r} needs a non-empty {name} set.")
  phase_steps = [math.ceil(sizes[p.pool][0].shape[-1] / sizes[p.pool][1])
                 for p in method.phases]
  steps_per_epoch = sum(phase_steps)

  needs = terms_lib.term_needs([t for p in method.phases for t in p.terms])
  ctx = {"hp": {k: hp[k] for k in method.data_hparam_names}}
  if "teacher" in needs:
    ctx["teacher"] = original
  if "bad_teacher" in needs:
    _check_init(method, init_variables, "its random teacher")
    ctx["bad_teacher"] = init_variables

  start = _start(method, model, data, original, init_variables, hp)
  member_ctx, shared_ctx = {}, {}
  if "layer_mask" in method.context_args:
    groups = _layer_groups(model, data)
    member_ctx["layer_mask"] = jax.tree.map(
        lambda on, m: on & (m > 0), layer_select.last_layers_mask(original.params, groups,
                                                                  hp["last_layers"]), mask)
    ctx["bn_update"] = layer_select.last_layers_mask(original.batch_stats, groups,
                                                     hp["last_layers"])
  if "saliency_mask" in method.context_args:
    member_ctx["saliency_mask"] = importance.saliency_masks(
        model, original, data, forget_idx, mask, hp["salient_fraction"], batch_size=batch_size,
        strategy=strategy)
  if "num_active" in method.context_args:
    member_ctx["num_active"] = importance.count_active(mask).astype(jnp.float32)
  if "steps_per_epoch" in method.context_args:
    shared_ctx["steps_per_epoch"] = steps_per_epoch
  if "total_steps" in method.context_args:
    shared_ctx["total_steps"] = steps_per_epoch * epochs
  tx_hp = {k: hp[k] for k in method.tx_hparam_names}
  opt_state = optimizer_init(method)(start.params, tx_hp, member_ctx, shared_ctx)
  state = TrainState(jax.device_put(np.zeros(num, np.int32)), start.params, start.batch_stats,
                     opt_state)

  def gate(phase, epoch):
    """Per-member bool: whether a gated phase (SCRUB's max pass) steps this epoch; None: all."""
    if phase.while_epoch_below is None:
      return None
    return epoch < np.asarray(hp[phase.while_epoch_below])   # on the host: no program

  def draw_batches(epoch, i, phase, steps):
    """A phase run's keys and its groups' batches (train.batches)."""
    pkeys = _phase_keys(keys, i, epoch)
    return pkeys, {g: member_batches(fold_in_members(pkeys, stream), sizes[g][0], sizes[g][1],
                                     steps)
                   for stream, g in enumerate(terms_lib.batch_groups(phase.terms))}

  # Phase runs in order, with their gates; a gated phase whose gate is off for every member is
  # skipped.
  runs = [(epoch, i, phase, steps, on) for epoch in range(epochs)
          for i, (phase, steps) in enumerate(zip(method.phases, phase_steps))
          for on in [gate(phase, epoch)] if on is None or on.any()]
  metrics = {}
  num_classes = int(model.num_classes)
  for epoch, i, phase, steps, on in runs:
    pkeys, inputs = draw_batches(epoch, i, phase, steps)
    if on is not None:
      inputs["on"] = jax.device_put(np.ascontiguousarray(np.broadcast_to(on[:, None],
                                                                         (num, steps))))
    driver = phase_driver(model, method, phase, num_classes, augment, strategy)
    (state, _), step_metrics = driver((state, ctx), data, inputs, fold_in_members(pkeys, 2))
    for term, values in step_metrics.items():
      name, mean = f"{phase.name}/{term}", values.mean(axis=1)
      if on is not None:
        # A member whose gate is off computed the losses but took no step: keep its value.
        mean = jnp.where(on, mean, metrics.get(name, jnp.full_like(mean, jnp.nan)))
      metrics[name] = mean
  return state, metrics
