"""Per-parameter importances at the original model: SalUn saliency masks and SSD dampening.

Both accumulate gradients of the mean cross-entropy over a fixed, unshuffled sequence of batches
(as their reference code iterates a DataLoader without shuffling), with frozen BatchNorm
statistics (the references call `model.eval()`). The last, partial batch counts as a batch of
its own (PyTorch's default `drop_last=False`): shapes stay static by padding it with weight-0
examples, and its loss is the mean over its real examples only.

Everything that ranks, counts or selects parameters uses the ACTIVE mask only, so a narrow net
zero-padded into a wider one gets exactly the selection it would get alone.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from unlearn_jax import compile_cache
from unlearn_jax.train import drivers, members
from unlearn_jax.train.state import Variables, apply_model

PyTree = Any


def ordered_batches(idx, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Splits `idx` in order into (T, B) index batches and (T, B) weights (0 pads the last)."""
  idx = np.asarray(idx, np.int32)
  if len(idx) == 0:
    raise ValueError("cannot compute importances over an empty set of examples.")
  steps = math.ceil(len(idx) / batch_size)
  padded = np.full(steps * batch_size, idx[0], np.int32)
  padded[:len(idx)] = idx
  weights = np.zeros(steps * batch_size, np.float32)
  weights[:len(idx)] = 1.0
  return padded.reshape(steps, batch_size), weights.reshape(steps, batch_size)


def _accumulate_driver(model, power: int, strategy: drivers.Strategy) -> drivers.Driver:
  def build():
    def step(carry, data, inputs, rng):
      del rng
      variables, acc = carry
      x, y, w = data["x"][inputs["idx"]], data["y"][inputs["idx"]], inputs["w"]

      def loss_fn(params):
        logits, _ = apply_model(model, params, variables.batch_stats, x, bn_train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(w * ce) / jnp.sum(w)

      grads = jax.grad(loss_fn)(variables.params)
      acc = jax.tree.map(lambda a, g: a + (g * g if power == 2 else g), acc, grads)
      return (variables, acc), {}

    return drivers.Driver(step, strategy)
  return compile_cache.cached(("accumulate", model, power, strategy), build)


def accumulate_gradients(model, variables: Variables, data: dict, idx, batch_size: int, *,
                         power: int = 1, strategy: drivers.Strategy = drivers.Strategy()
                         ) -> tuple[PyTree, int]:
  """Sum over ordered batches of the batch-mean CE gradient (power 1) or its square (power 2).

  Args:
    variables: member-stacked (S, ...) variables.
    data: {'x', 'y'} device arrays; `idx` indexes them: (P,) shared by every member or (S, P)
      one index set per member.

  Returns:
    (member-stacked sum, number of batches).
  """
  if power not in (1, 2):
    raise ValueError(f"power must be 1 or 2, got {power}.")
  num = jax.tree.leaves(variables.params)[0].shape[0]
  idx = np.asarray(idx)
  if idx.ndim == 2:   # one index set per member (equal sizes)
    per_member = [ordered_batches(row, batch_size) for row in idx]
    batches = np.stack([b for b, _ in per_member])
    weights = np.stack([w for _, w in per_member])
  else:
    batches, weights = ordered_batches(idx, batch_size)
    batches = np.broadcast_to(batches, (num,) + batches.shape)
    weights = np.broadcast_to(weights, (num,) + weights.shape)
  # device_put, not jnp.asarray: that compiles a copy program per shape.
  inputs = {"idx": jax.device_put(np.ascontiguousarray(batches)),
            "w": jax.device_put(np.ascontiguousarray(weights))}
  carry = (variables, _zeros_like(variables.params))
  keys = _unused_keys(num)
  (_, acc), _ = _accumulate_driver(model, power, strategy)(
      carry, {"x": data["x"], "y": data["y"]}, inputs, keys)
  return acc, batches.shape[1]


@compile_cache.exact_jit(static_argnums=0)
def _unused_keys(num: int) -> jax.Array:
  """Keys for the driver to hand every member; these passes draw nothing from them."""
  return jax.random.split(jax.random.key(0), num)


def _zeros_like(tree: PyTree) -> PyTree:
  if members.host_copyable(tree):
    # device_put, not jnp.asarray: that compiles a copy program per shape.
    return jax.tree.map(lambda x: jax.device_put(np.zeros(x.shape, x.dtype)), tree)
  return _compiled_zeros_like(tree)


@compile_cache.exact_jit
def _compiled_zeros_like(tree: PyTree) -> PyTree:
  # One program for the whole tree: eager zeros_like compiles one per leaf shape.
  return jax.tree.map(jnp.zeros_like, tree)


@compile_cache.jit
def _divide(tree: PyTree, by) -> PyTree:
  # One program for the tree; the same division per leaf as eager ops.
  return jax.tree.map(lambda x: x / by, tree)


def count_active(mask: PyTree) -> jax.Array:
  """(S,) int32 number of nonzero entries of a member-stacked mask (active, selected...)."""
  if members.host_copyable(mask):
    return jax.device_put(sum(np.sum(np.asarray(x).reshape(x.shape[0], -1) > 0, axis=1,
                                     dtype=np.int32) for x in jax.tree.leaves(mask)))
  return _compiled_count_active(mask)


@compile_cache.exact_jit
def _compiled_count_active(mask: PyTree) -> jax.Array:
  # Integer counts: float32 sums of ones stop being exact past 2^24 parameters.
  return sum(jnp.sum(x.reshape(x.shape[0], -1) > 0, axis=1, dtype=jnp.int32)
             for x in jax.tree.leaves(mask))


def _flat(tree) -> jax.Array:
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def _unflat(flat, like) -> PyTree:
  leaves, treedef = jax.tree.flatten(like)
  out, start = [], 0
  for leaf in leaves:
    out.append(flat[start:start + leaf.size].reshape(leaf.shape))
    start += leaf.size
  return jax.tree.unflatten(treedef, out)


def salient_count(num_active: int, fraction) -> int:
  """int(num_active * r): how many weights SalUn keeps (the reference's `int(len * ratio)`).

  `fraction` arrives as float32 member data, where 0.7 is 0.69999999; it is read back as the
  shortest decimal that rounds to it (0.7) so that the product truncates as the reference's
  float64 one does (int(10 * 0.7) = 7, not 6).
  """
  ratio = float(str(np.float32(fraction)))
  if not 0.0 <= ratio <= 1.0:
    raise ValueError(f"salient fraction must lie in [0, 1], got {ratio}.")
  return int(int(num_active) * ratio)


def top_count_mask(scores: PyTree, active: PyTree, count) -> PyTree:
  """{0,1} float mask of the `count` largest scores among ACTIVE entries.

  One member (no leading axis); traceable. Ranks over all leaves together (a global threshold,
  as SalUn's reference); ties are broken by flattening order (leaf order, then row-major), which
  is the same for a narrow net and its zero-padded copy. Padded entries are never selected.
  """
  flat = _flat(scores).astype(jnp.float32)
  act = _flat(active) > 0
  ranked = jnp.where(act, flat, -jnp.inf)
  order = jnp.argsort(-ranked, stable=True)
  ranks = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
  selected = (ranks < count) & act
  return _unflat(selected.astype(jnp.float32), scores)


def top_fraction_mask(scores: PyTree, active: PyTree, fraction) -> PyTree:
  """`top_count_mask` of `salient_count(n_active, fraction)` entries; one member, on the host."""
  num_active = sum(int(np.sum(np.asarray(a) > 0)) for a in jax.tree.leaves(active))
  return top_count_mask(scores, active, salient_count(num_active, fraction))


def saliency_masks(model, variables: Variables, data, forget_idx, active_mask, fraction, *,
                   batch_size: int, strategy: drivers.Strategy = drivers.Strategy()) -> PyTree:
  """SalUn weight saliency for every member: top `fraction` of |sum of forget-CE gradients|.

  Args:
    variables, active_mask: member-stacked (S, ...).
    fraction: (S,) salient fractions r; member s keeps int(r_s * its active count) weights.

  Returns:
    Member-stacked {0,1} float masks over the params.
  """
  grads, _ = accumulate_gradients(model, variables, data, forget_idx, batch_size, power=1,
                                  strategy=strategy)
  num_active = np.asarray(count_active(active_mask))
  counts = [salient_count(n, r) for n, r in zip(num_active, np.asarray(fraction).reshape(-1))]
  return _saliency_from_grads(grads, active_mask, jnp.asarray(counts, jnp.int32))


@compile_cache.jit
def _saliency_from_grads(grads, active_mask, counts):
  scores = jax.tree.map(jnp.abs, grads)
  return jax.vmap(top_count_mask)(scores, active_mask, counts)


def ssd_importances(model, variables: Variables, data, idx, *, batch_size: int,
                    strategy: drivers.Strategy = drivers.Strategy()) -> PyTree:
  """Diagonal-Fisher importances of SSD: mean over batches of the squared batch-mean gradient.

  This is the reference's `calc_importance` (Foster et al. 2023): per batch, the gradient of the
  mean CE, squared elementwise, summed over batches and divided by the number of batches.
  """
  sq, steps = accumulate_gradients(model, variables, data, idx, batch_size, power=2,
                                   strategy=strategy)
  return _divide(sq, steps)


def ssd_dampen(params: PyTree, forget_importance: PyTree, reference_importance: PyTree,
               active: PyTree, selection_weight, dampening) -> tuple[PyTree, PyTree]:
  """Selective synaptic dampening of one member (no leading axis).

  A parameter is selected where forget importance > selection_weight (alpha) * reference
  importance, and multiplied there by min(dampening (lambda) * reference / forget, 1) (the
  reference's exponent 1 and lower bound 1). Unselected parameters are returned unchanged.

  Returns:
    (dampened params, {0,1} float selection mask)
  """
  def one(p, f, r, a):
    sel = (f > selection_weight * r) & (a > 0)
    factor = jnp.minimum(dampening * r / jnp.where(sel, f, 1.0), 1.0)
    return jnp.where(sel, p * factor.astype(p.dtype), p), sel.astype(jnp.float32)

  out = jax.tree.map(one, params, forget_importance, reference_importance, active)
  treedef = jax.tree.structure(params)
  leaves = treedef.flatten_up_to(out)
  return (treedef.unflatten([leaf[0] for leaf in leaves]),
          treedef.unflatten([leaf[1] for leaf in leaves]))
