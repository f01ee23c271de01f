"""One step of one phase of a gradient method, for ONE model, and its cached driver.

The step draws the phase's batches (with augmentation, random labels and teacher logits as its
terms need), takes one gradient per term and hands `{term: gradient}` to the method's lifted
optimizer, whose hyperparameters live in each member's state: one instance serves every member.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from unlearn_jax import compile_cache
from unlearn_jax.data.augment import augment_batch
from unlearn_jax.methods import terms as terms_lib
from unlearn_jax.methods.method import MASK_ARGS, Method, Phase
from unlearn_jax.train import drivers
from unlearn_jax.train.state import TrainState, apply_model


def lifted_tx(method: Method):
  """The method's factory with every numeric argument liftable into the optimizer state."""
  return optax.inject_hyperparams(method.tx, hyperparam_dtype=jnp.float32)


def _any_tx(method: Method) -> optax.GradientTransformationExtraArgs:
  """One instance serving every member: numeric values are read from each member's state."""
  # Context arguments only need init's kind: a mask tree (None here) or a number.
  placeholders = {name: None if name in MASK_ARGS else 1.0
                  for name in method.context_args}
  return lifted_tx(method)(**{k: 0.0 for k in method.tx_hparam_names}, **placeholders)


def output_grads(model, state: TrainState, x):
  """Per-example gradients of the largest logit (frozen BatchNorm): a tree like the params with
  a leading axis over the examples of `x`."""
  def top_logit(params, xi):
    logits, _ = apply_model(model, params, state.batch_stats, xi[None], bn_train=False)
    return jnp.max(logits[0])
  return jax.vmap(jax.grad(top_logit), in_axes=(None, 0))(state.params, x)


def make_phase_step(model, method: Method, phase: Phase, num_classes: int, augment: bool):
  """`step(carry, data, inputs, key)` for ONE model, carry = (TrainState, context).

  context: {'hp': {name: scalar}, 'teacher': Variables?, 'bad_teacher': Variables?,
            'bn_update': bool tree like batch_stats? (only these statistics update)}.
  inputs: {'retain': (B,) idx?, 'forget': (B_f,) idx?, 'on': bool? (gated phases)}.
  """
  tx = _any_tx(method)
  groups = terms_lib.batch_groups(phase.terms)
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
          teacher = ctx[who]
          logits, _ = apply_model(model, teacher.params, teacher.batch_stats, x, bn_train=False)
          r[f"{who}_logits"] = jax.lax.stop_gradient(logits)
      if "temperature" in needs:
        r["temperature"] = ctx["hp"]["temperature"]
      if "retain_logits" in needs:   # the retain batch comes first (terms.GROUPS order)
        logits, _ = apply_model(model, state.params, state.batch_stats, xs["retain"],
                                phase.bn_train)
        r["retain_logits"] = jax.lax.stop_gradient(logits)
      xs[g], refs[g] = x, r

    def group_losses(params, g, batch_stats):
      logits, batch_stats = apply_model(model, params, batch_stats, xs[g], phase.bn_train)
      return {t: terms_lib.get_term(t).fn(logits, refs[g]) for t in by_group[g]}, batch_stats

    # One vjp per group, so each term's backward pass runs through its own group's graph only.
    # BN running averages see the retain batch, then the forget batch; in train mode a batch is
    # normalised with its own statistics, so the order does not change any loss.
    grads, losses, batch_stats = {}, {}, state.batch_stats
    for g in (g for g in groups if by_group[g]):
      g_grads, g_losses, batch_stats = terms_lib.per_term_grads(
          lambda p, g=g, bs=batch_stats: group_losses(p, g, bs), state.params)
      grads.update(g_grads)
      losses.update(g_losses)
    if "bn_update" in ctx:   # frozen layers (CF-k, EU-k) keep their statistics bit for bit
      batch_stats = jax.tree.map(lambda m, new, old: jnp.where(m, new, old), ctx["bn_update"],
                                 batch_stats, state.batch_stats)
    extra = {}
    if phase.output_constraints:
      extra["constraint_grads"] = output_grads(model, state,
                                               xs["retain"][:phase.output_constraints])
    updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(state.step + 1, params, batch_stats, opt_state)
    if gated:
      new = jax.tree.map(lambda a, b: jnp.where(inputs["on"], a, b), new, state)
    return (new, ctx), losses

  return step


def phase_driver(model, method: Method, phase: Phase, num_classes: int, augment: bool,
                 strategy: drivers.Strategy) -> drivers.Driver:
  """The phase's step under `strategy`, compiled once per (model, method factory, phase, ...)."""
  key = ("phase", model, method.tx, phase, num_classes, augment, strategy)
  return compile_cache.cached(key, lambda: drivers.Driver(
      make_phase_step(model, method, phase, num_classes, augment), strategy))


def optimizer_init(method: Method):
  """jit(vmap(init)) of the lifted optimizer: per-member hyperparameters and context."""
  def build():
    lifted = lifted_tx(method)

    def init_one(params, hp, member_ctx, shared_ctx):
      return lifted(**hp, **member_ctx, **shared_ctx).init(params)

    return compile_cache.jit(jax.vmap(init_one, in_axes=(0, 0, 0, None)))
  return compile_cache.cached(("opt_init", method.tx), build)
