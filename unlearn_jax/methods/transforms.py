"""Optax building blocks that unlearning methods are composed from.

Each block follows optax's own recipe (optax/_src/transform.py `scale_by_adam`): a factory named
for what it does, a `<Name>State` NamedTuple, `init_fn`/`update_fn` closures, and numeric
hyperparameters in the signature, so `optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)`
can lift them into the optimizer state and a grid of values becomes data on the member axis.

Per-term gradients. A method's loss has several terms (retain CE, forget CE, KL to a teacher...).
The step computes one gradient tree per term and hands the optimizer the *dict*
`{term_name: gradient_tree}` as its "updates"; `combine_terms` is always the first link of the
chain and reduces that dict to one tree with the method's (liftable) weights. Everything after it
is ordinary optax. Keeping the terms separate until the optimizer means the weights (NegGrad+'s
alpha, SCRUB's gamma/alpha) live in the optimizer state like the learning rate does.

    def neggrad_plus_tx(learning_rate=0.01, alpha=0.99, weight_decay=5e-4, momentum=0.9):
      return optax.chain(combine_terms(retain_ce=alpha, forget_ce=-(1.0 - alpha)),
                         sgd_with_wd(learning_rate, weight_decay, momentum))
    tx = optax.inject_hyperparams(neggrad_plus_tx, hyperparam_dtype=jnp.float32)(alpha=0.95)

`combine_terms` takes its weights as `**weights`; optax's `inject_hyperparams` binds keyword
arguments by the factory's signature, so term weights are lifted at the level of the method's
factory (as above), where they have names. Every other block is liftable on its own.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

PyTree = Any

CombineTermsState = optax.EmptyState


def combine_terms(**weights: float) -> optax.GradientTransformationExtraArgs:
  """Reduces per-term gradients `{name: tree}` to `sum_k weights[k] * tree_k`.

  Terms named in `weights` but absent from the updates are skipped (a phase that does not compute
  them, e.g. SCRUB's max pass has no retain terms); a term present in the updates but without a
  weight is an error, so a typo cannot silently drop a loss term.

  Args:
    **weights: one numeric weight per term name; negative weights ascend that term.

  Returns:
    A transform whose `update` takes a mapping of gradient trees and returns one tree.
  """
  if not weights:
    raise ValueError("combine_terms needs at least one term weight, e.g. retain_ce=1.0.")

  def init_fn(params):
    del params
    return CombineTermsState()

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    if not isinstance(updates, Mapping):
      raise TypeError("combine_terms expects the updates to be a mapping {term: gradient tree}, "
                      f"got {type(updates).__name__}.")
    unknown = sorted(set(updates) - set(weights))
    if unknown:
      raise ValueError(f"combine_terms got gradients for terms {unknown} without a weight; "
                       f"weighted terms: {sorted(weights)}.")
    present = [name for name in weights if name in updates]
    if not present:
      raise ValueError(f"combine_terms got none of its terms {sorted(weights)}.")
    trees = [updates[name] for name in present]
    coeffs = [weights[name] for name in present]

    def combine(*leaves):
      out = coeffs[0] * leaves[0]
      for c, leaf in zip(coeffs[1:], leaves[1:]):
        out = out + c * leaf
      return out.astype(leaves[0].dtype)

    return jax.tree.map(combine, *trees), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AddL1State(NamedTuple):
  """Number of updates seen, which drives the linear decay of the l1 strength."""
  count: jax.Array


def l1_strength(strength, count, decay_steps, period, normalizer):
  """gamma_t = strength / normalizer * max(0, 1 - floor(count / period) * period / decay_steps).

  With `period` = steps per epoch and `decay_steps` = epochs * steps per epoch this is the
  reference's per-epoch schedule gamma_e = gamma * (1 - e / E); `decay_steps <= 0` means no decay.
  """
  stepped = jnp.floor(count / jnp.maximum(period, 1)) * jnp.maximum(period, 1)
  decay = jnp.where(decay_steps > 0,
                    jnp.clip(1.0 - stepped / jnp.maximum(decay_steps, 1), 0.0, 1.0), 1.0)
  return strength / normalizer * decay


def add_l1(strength: float, decay_steps: float = 0.0, period: float = 1.0,
           normalizer: float = 1.0) -> optax.GradientTransformation:
  """Adds the subgradient of `gamma_t * ||params||_1`, i.e. `gamma_t * sign(params)`.

  Args:
    strength: gamma at the first step.
    decay_steps: gamma decays linearly to 0 over this many updates (0: constant).
    period: the decay is stepwise with this period (steps per epoch gives the per-epoch decay of
      the l1-sparse reference).
    normalizer: divides gamma; pass the member's ACTIVE parameter count to make the penalty
      per-parameter (the raw l1 norm grows with width). Padded parameters are 0 and sign(0) = 0,
      so they never receive a penalty.

  Returns:
    A transform that needs `params` in `update`.
  """

  def init_fn(params):
    del params
    return AddL1State(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("add_l1 needs params in update() (it adds gamma * sign(params)).")
    gamma = l1_strength(strength, state.count, decay_steps, period, normalizer)
    updates = jax.tree.map(lambda g, p: g + (gamma * jnp.sign(p)).astype(g.dtype), updates, params)
    return updates, AddL1State(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def sgd_with_wd(learning_rate: float, weight_decay: float = 0.0,
                momentum: float = 0.9) -> optax.GradientTransformation:
  """PyTorch's SGD: d = g + wd * p; buf = momentum * buf + d (buf_0 = d); p -= lr * buf."""
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.trace(decay=momentum),
                     optax.scale_by_learning_rate(learning_rate))


class DecayTowardStartState(NamedTuple):
  """The parameters at `init`, which the weight decay pulls toward."""
  start: PyTree


def add_decay_toward_start(weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adds `weight_decay * (params - params_at_init)`: the gradient of an L2 pull toward the start.

  With the original model as the start this is the `weight_decay / 2 * ||theta - theta_orig||^2`
  penalty of SCRUB's NegGrad+ notebook, where `optax.add_decayed_weights` pulls toward zero.
  Padded (always zero) entries start at zero and stay there.
  """

  def init_fn(params):
    return DecayTowardStartState(start=params)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("add_decay_toward_start needs params in update().")
    updates = jax.tree.map(lambda g, p, p0: g + (weight_decay * (p - p0)).astype(g.dtype),
                           updates, params, state.start)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def sgd_toward_start(learning_rate: float, weight_decay: float = 0.0,
                     momentum: float = 0.9) -> optax.GradientTransformation:
  """`sgd_with_wd` whose weight decay pulls toward the parameters at init instead of zero."""
  return optax.chain(add_decay_toward_start(weight_decay), optax.trace(decay=momentum),
                     optax.scale_by_learning_rate(learning_rate))


class MaskedHardState(NamedTuple):
  """The elementwise {0,1} mask (bool leaves) and the inner transform's state."""
  mask: PyTree
  inner_state: PyTree


def masked_hard(inner: optax.GradientTransformation,
                mask: Optional[PyTree] = None) -> optax.GradientTransformationExtraArgs:
  """Restricts `inner` elementwise to the entries where `mask` is nonzero; the rest never move.

  Unlike `optax.masked` (whole leaves), this masks individual entries. The inner transform sees
  the gradients AND the parameters zeroed outside the mask, so weight decay, l1 and momentum
  never accumulate there, and its output is zeroed outside the mask, so masked-out parameters
  stay bit-identical whatever the inner transform does.

  The mask is stored in the state (read from there in `update`), so one transform instance serves
  members with different masks: build each member's state with its own mask under `vmap`.

  Args:
    inner: the transform to restrict (e.g. `sgd_with_wd(...)`).
    mask: a tree like the params with {0,1} (or bool) leaves; None means all ones.
  """
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    m = (jax.tree.map(lambda p: jnp.ones(jnp.shape(p), bool), params) if mask is None
         else jax.tree.map(lambda x: jnp.asarray(x) > 0, mask))
    zeroed = jax.tree.map(lambda p, b: jnp.where(b, p, jnp.zeros_like(p)), params, m)
    return MaskedHardState(mask=m, inner_state=inner.init(zeroed))

  def update_fn(updates, state, params=None, **extra_args):
    m = state.mask
    zero_out = lambda t: jax.tree.map(lambda x, b: jnp.where(b, x, jnp.zeros_like(x)), t, m)
    inner_params = None if params is None else zero_out(params)
    new, inner_state = inner.update(zero_out(updates), state.inner_state, inner_params,
                                    **extra_args)
    return zero_out(new), MaskedHardState(mask=m, inner_state=inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class PerTermSGDState(NamedTuple):
  """One momentum buffer per term: each term has an optimizer of its own."""
  traces: Mapping[str, PyTree]


def per_term_sgd(learning_rates: Mapping[str, float], momentum: float = 0.9,
                 weight_decays: Optional[Mapping[str, float]] = None
                 ) -> optax.GradientTransformationExtraArgs:
  """PyTorch's SGD (`sgd_with_wd`) run separately for every term: per-term gradients
  `{name: tree}` (as `combine_terms` takes them), each with its own learning rate, weight decay
  and momentum buffer, the updates summed.

  For methods whose phases use separate optimizers in their reference code (the NeurIPS 2023
  challenge winner: one per phase). A term's buffer moves only at steps that compute the term.
  Use it in place of `combine_terms` + `sgd_with_wd`, as the whole transform.

  Args:
    learning_rates: {term: learning rate}; every term the updates may contain.
    momentum: shared momentum coefficient.
    weight_decays: {term: weight decay} (missing terms: 0).
  """
  weight_decays = dict(weight_decays or {})
  unknown = sorted(set(weight_decays) - set(learning_rates))
  if unknown:
    raise ValueError(f"per_term_sgd: weight decays for terms {unknown} without a learning rate.")

  def init_fn(params):
    return PerTermSGDState({name: jax.tree.map(jnp.zeros_like, params)
                            for name in learning_rates})

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError("per_term_sgd needs params in update() (weight decay).")
    unknown = sorted(set(updates) - set(learning_rates))
    if unknown:
      raise ValueError(f"per_term_sgd got gradients for terms {unknown} without a learning "
                       f"rate; terms: {sorted(learning_rates)}.")
    traces, out = dict(state.traces), None
    for name, grads in updates.items():
      wd = weight_decays.get(name, 0.0)
      traces[name] = jax.tree.map(lambda g, p, b: momentum * b + (g + wd * p).astype(b.dtype),
                                  grads, params, traces[name])
      step = jax.tree.map(lambda b: -learning_rates[name] * b, traces[name])
      out = step if out is None else jax.tree.map(jnp.add, out, step)
    out = jax.tree.map(lambda u, p: u.astype(p.dtype), out, params)
    return out, PerTermSGDState(traces)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class OrthogonalShrinkState(NamedTuple):
  """Number of updates seen: the shrink strength decays per update and stops after a while."""
  count: jax.Array


SPAN_RTOL = 1e-3


def orthogonal_complement(vector: jax.Array, rows: jax.Array) -> jax.Array:
  """`vector` minus its projection onto the span of `rows` G (m, d): v - G^T pinv(G^T) v.

  Directions whose singular value is below SPAN_RTOL of G's largest count as outside the span:
  per-example gradients are often exactly rank-deficient (examples with the same ReLU pattern
  and class), float32 leaves such directions at ~1e-7 of the largest singular value, and a
  projection is scale-free, so keeping them would move the result as much as a real direction.
  The SVD of G itself (not of G G^T, which would square that noise) makes the same choice
  whatever zero padding the parameters carry.
  """
  return vector - rows.T @ (jnp.linalg.pinv(rows.T, rtol=SPAN_RTOL) @ vector)


def add_orthogonal_shrink(strength: float, decay: float = 1.0,
                          active_steps: float = -1.0) -> optax.GradientTransformationExtraArgs:
  """Adds MinNorm-OG's projected step: `-c_t * P(params)`, with P the projection onto the
  orthogonal complement of the constraint gradients and c_t = strength * decay^t.

  The step `theta - c P(theta)` is the minimiser of ||theta + D||^2 + lambda ||D||^2 over
  perturbations D orthogonal to the gradients (c = 1 / (1 + lambda)): it shrinks the weights
  only where the model's outputs on the constraint examples are, to first order, unchanged.

  Args:
    strength: c_0 in [0, 1].
    decay: c_{t+1} = decay * c_t.
    active_steps: the shrink stops after this many updates (< 0: never; MinNorm-OG's last
      epochs are plain descent).

  Returns:
    A transform whose `update` needs `params` and the extra argument `constraint_grads`: a tree
    like the params with a leading axis over the m constraint examples.
  """

  def init_fn(params):
    del params
    return OrthogonalShrinkState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, *, constraint_grads=None, **extra_args):
    del extra_args
    if params is None or constraint_grads is None:
      raise ValueError("add_orthogonal_shrink needs params and constraint_grads in update().")
    theta, unravel = ravel_pytree(params)
    rows = jax.vmap(lambda g: ravel_pytree(g)[0])(constraint_grads)
    on = (active_steps < 0) | (state.count < active_steps)
    c = jnp.where(on, strength * decay ** state.count.astype(jnp.float32), 0.0)
    shrink = unravel(-c * orthogonal_complement(theta, rows.astype(theta.dtype)))
    updates = jax.tree.map(lambda u, s: u + s.astype(u.dtype), updates, shrink)
    return updates, OrthogonalShrinkState(count=optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
