"""Training a member-stacked state over device-resident data, epoch by epoch.

The same trainer trains original models (pool = the train split) and retrained-from-scratch
references (pool = the retain set): only the pool of indices differs.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache
from unlearn_jax.train import drivers
from unlearn_jax.train.batches import check_pool, epoch_batches, fold_in_members
from unlearn_jax.train.member_chunks import map_member_chunks
from unlearn_jax.train.state import TrainState, apply_model, make_train_step

PyTree = Any
EpochCallback = Callable[[int, TrainState, dict], None]


class Progress:
  """Periodic log lines with rate and ETA."""

  def __init__(self, name: str, total: int, unit: str = "epoch", every_s: float = 10.0):
    self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
    self.start = self.last = time.time()
    self.done0 = None

  def update(self, done: int, extra: str | Callable[[], str] = ""):
    """Logs a line if one is due; `extra` may be a callable, called only then (e.g. a loss read
    from the device, which would otherwise wait for the work in flight every time)."""
    now = time.time()
    if self.done0 is None:
      self.done0 = done - 1
    if now - self.last < self.every_s and done < self.total:
      return
    extra = extra() if callable(extra) else extra
    self.last = now
    rate = (done - self.done0) / max(now - self.start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    logging.info("%s: %s %d/%d, %.2f %s/s, ETA %.0fs %s", self.name, self.unit, done, self.total,
                 rate, self.unit, eta, extra)


def train(model, tx, state: TrainState, data: dict, pool_idx, keys: jax.Array, *, epochs: int,
          batch_size: int, augment: bool, strategy: drivers.Strategy, start_epoch: int = 0,
          callback: EpochCallback | None = None, name: str = "train") -> tuple[TrainState, dict]:
  """Trains every member for epochs [start_epoch, epochs).

  Args:
    model, tx: the (widest) module and an optimizer instance (hyperparameters live in the state).
    state: member-stacked TrainState.
    data: {'x', 'y'} device arrays of the training pool's source arrays.
    pool_idx: indices into data of the examples to train on: (P,) shared by every member, or
      (S, P) one pool per member (shadow models, each on its own subset).
    keys: (S,) typed keys of the members' data/augmentation stream.
    callback: called after every epoch with (epoch + 1, state, epoch metrics), e.g. to checkpoint.

  Returns:
    The final state and per-member metrics of the last epoch: 'loss', 'error' of shape (S,).
  """
  driver = drivers.Driver(make_train_step(model, tx, augment), strategy)
  pool_idx = check_pool(pool_idx, keys.shape[0])
  progress = Progress(name, epochs)
  metrics = {"loss": jnp.full(keys.shape, jnp.nan), "error": jnp.full(keys.shape, jnp.nan)}
  for epoch in range(start_epoch, epochs):
    # XLA:CPU runs programs in dispatch order, so a draw dispatched behind the steps would wait
    # for them anyway: each epoch draws its own batches first.
    batches = epoch_batches(keys, pool_idx, batch_size, epoch)
    state, step_metrics = driver(state, data, batches, fold_in_members(keys, epoch))
    metrics = jax.tree.map(lambda m: m.mean(axis=1), step_metrics)
    if callback is not None:
      callback(epoch + 1, state, metrics)
    progress.update(epoch + 1,
                    lambda: f"loss {float(jnp.nanmean(metrics['loss'])):.4f}")
  return state, metrics


def predict_logits(model, params, batch_stats, x, *, batch_size: int = 1024,
                   strategy: drivers.Strategy = drivers.Strategy()) -> np.ndarray:
  """Logits (S, N, C) of every member on `x` with frozen BatchNorm statistics."""
  fn = _predict_fn(model, strategy.member_chunk == 1)

  def chunk_logits(p, bs):
    return np.concatenate([np.asarray(fn(p, bs, x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)], axis=1)

  num = jax.tree.leaves(params)[0].shape[0]
  return map_member_chunks(chunk_logits, strategy.chunk_size(num), params, batch_stats,
                           concatenate=np.concatenate)


def _predict_fn(model, unbatched: bool):
  """Compiled member-stacked inference, cached per module so sweeps compile it once."""
  def build():
    single = lambda p, bs, x: apply_model(model, p, bs, x, bn_train=False)[0]
    if unbatched:
      # One member: skip vmap so XLA:CPU keeps plain (not grouped) convolutions.
      first = lambda tree: jax.tree.map(lambda a: a[0], tree)
      return compile_cache.jit(lambda p, bs, x: single(first(p), first(bs), x)[None])
    return compile_cache.jit(jax.vmap(single, in_axes=(0, 0, None)))

  return compile_cache.cached(("predict", model, unbatched), build)
