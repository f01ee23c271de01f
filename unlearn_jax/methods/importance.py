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

from unlearn_jax.train import drivers
from unlearn_jax.train.state import apply_model

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


_DRIVERS: dict = {}


def _accumulate_driver(model, power: int, strategy: drivers.Strategy) -> drivers.Driver:
  key = (model, power, strategy)
  if key not in _DRIVERS:
    def step(carry, data, inputs, rng):
      del rng
      x, y, w = data["x"][inputs["idx"]], data["y"][inputs["idx"]], inputs["w"]

      def loss_fn(params):
        logits, _ = apply_model(model, params, carry["batch_stats"], x, bn_train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(w * ce) / jnp.sum(w)

      grads = jax.grad(loss_fn)(carry["params"])
      acc = jax.tree.map(lambda a, g: a + (g * g if power == 2 else g), carry["acc"], grads)
      return {**carry, "acc": acc}, {}

    _DRIVERS[key] = drivers.Driver(step, strategy)
  return _DRIVERS[key]


def accumulate_gradients(model, params: PyTree, batch_stats: PyTree, data: dict, idx,
                         batch_size: int, *, power: int = 1,
                         strategy: drivers.Strategy = drivers.Strategy()) -> tuple[PyTree, int]:
  """Sum over ordered batches of the batch-mean CE gradient (power 1) or its square (power 2).

  Args:
    params, batch_stats: member-stacked (S, ...) variables.
    data: {'x', 'y'} device arrays; `idx` indexes them.

  Returns:
    (member-stacked sum, number of batches).
  """
  if power not in (1, 2):
    raise ValueError(f"power must be 1 or 2, got {power}.")
  batches, weights = ordered_batches(idx, batch_size)
  num = jax.tree.leaves(params)[0].shape[0]
  inputs = {"idx": jnp.broadcast_to(batches, (num,) + batches.shape),
            "w": jnp.broadcast_to(weights, (num,) + weights.shape)}
  carry = {"params": params, "batch_stats": batch_stats,
           "acc": jax.tree.map(jnp.zeros_like, params)}
  keys = jax.random.split(jax.random.key(0), num)
  carry, _ = _accumulate_driver(model, power, strategy)(
      carry, {"x": data["x"], "y": data["y"]}, inputs, keys)
  return carry["acc"], batches.shape[0]


def _flat(tree) -> jax.Array:
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def _unflat(flat, like) -> PyTree:
  leaves, treedef = jax.tree.flatten(like)
  out, start = [], 0
  for leaf in leaves:
    out.append(flat[start:start + leaf.size].reshape(leaf.shape))
    start += leaf.size
  return jax.tree.unflatten(treedef, out)


def top_fraction_mask(scores: PyTree, active: PyTree, fraction) -> PyTree:
  """{0,1} float mask of the round(fraction * n_active) largest scores among ACTIVE entries.

  One member (no leading axis). Ranks over all leaves together (a global threshold, as SalUn's
  reference); ties are broken by flattening order (leaf order, then row-major), which is the same
  for a narrow net and its zero-padded copy. Padded entries are never selected.
  """
  flat = _flat(scores).astype(jnp.float32)
  act = _flat(active) > 0
  k = jnp.round(fraction * jnp.sum(act))
  ranked = jnp.where(act, flat, -jnp.inf)
  order = jnp.argsort(-ranked, stable=True)
  ranks = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
  selected = (ranks < k) & act
  return _unflat(selected.astype(jnp.float32), scores)


def saliency_masks(model, params, batch_stats, data, forget_idx, active_mask, fraction, *,
                   batch_size: int, strategy: drivers.Strategy = drivers.Strategy()) -> PyTree:
  """SalUn weight saliency for every member: top `fraction` of |sum of forget-CE gradients|.

  Args:
    params, batch_stats, active_mask: member-stacked (S, ...).
    fraction: (S,) salient fractions r.

  Returns:
    Member-stacked {0,1} float masks over the params.
  """
  grads, _ = accumulate_gradients(model, params, batch_stats, data, forget_idx, batch_size,
                                  power=1, strategy=strategy)
  return _saliency_from_grads(grads, active_mask, jnp.asarray(fraction, jnp.float32))


@jax.jit
def _saliency_from_grads(grads, active_mask, fraction):
  scores = jax.tree.map(jnp.abs, grads)
  return jax.vmap(top_fraction_mask)(scores, active_mask, fraction)


def ssd_importances(model, params, batch_stats, data, idx, *, batch_size: int,
                    strategy: drivers.Strategy = drivers.Strategy()) -> PyTree:
  """Diagonal-Fisher importances of SSD: mean over batches of the squared batch-mean gradient.

  This is the reference's `calc_importance` (Foster et al. 2023): per batch, the gradient of the
  mean CE, squared elementwise, summed over batches and divided by the number of batches.
  """
  sq, steps = accumulate_gradients(model, params, batch_stats, data, idx, batch_size,
                                   power=2, strategy=strategy)
  return jax.tree.map(lambda x: x / steps, sq)


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
