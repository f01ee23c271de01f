"""Training a member-stacked state over device-resident data, epoch by epoch.

The same trainer trains original models (pool = the train split) and retrained-from-scratch
references (pool = the retain set): only the pool of indices differs.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache
from unlearn_jax.train import drivers
from unlearn_jax.train.batches import (check_pool, draws_on_host, epoch_batches, epoch_steps,
                                       fold_in_members)
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
  with _EpochBatches(keys, pool_idx, batch_size, start_epoch, epochs) as upcoming:
    for epoch in range(start_epoch, epochs):
      state, step_metrics = driver(state, data, upcoming.next(), fold_in_members(keys, epoch))
      metrics = jax.tree.map(lambda m: m.mean(axis=1), step_metrics)
      if callback is not None:
        callback(epoch + 1, state, metrics)
      progress.update(epoch + 1,
                      lambda: f"loss {float(jnp.nanmean(metrics['loss'])):.4f}")
  return state, metrics


# Bytes of batch indices drawn ahead of the steps, at most: 66 epochs of 16 members x 4,000
# examples, or 5 of 16 members x 50,000 (a CIFAR-10-sized pool).
LOOKAHEAD_BYTES = 16 << 20


class _EpochBatches:
  """The epochs' batches in order, drawn ahead of the steps in a thread of this trainer's own.

  On CPU an epoch's draw is numpy work (sort keys and sorts: 4 ms for 16 members x 4,000
  examples). Drawn one epoch ahead it runs beside the steps, on cores they keep busy; drawn
  several epochs ahead it also fills the core left idle while the first epoch compiles. The
  thread is this trainer's, so stages training side by side never queue behind each other's
  draws. At most `LOOKAHEAD_BYTES` of indices wait; the indices are the same as drawn one by one.
  Where the draws are device programs (accelerators, several processes) they are dispatched
  here, in order, by the training loop's thread: those are asynchronous already, and every
  process must dispatch its programs in the same order.
  """

  def __init__(self, keys, pool_idx, batch_size: int, start: int, stop: int):
    per_epoch = keys.shape[0] * epoch_steps(pool_idx, batch_size) * batch_size * 4   # int32
    self._depth = max(1, LOOKAHEAD_BYTES // per_epoch) if draws_on_host(keys, pool_idx) else 0
    self._draw = lambda epoch: epoch_batches(keys, pool_idx, batch_size, epoch)
    self._epochs = iter(range(start, stop))
    self._pending: collections.deque = collections.deque()
    self._thread = concurrent.futures.ThreadPoolExecutor(1, "epoch_batches")
    self._top_up()

  def _top_up(self):
    while self._depth and len(self._pending) < self._depth + 1:
      epoch = next(self._epochs, None)
      if epoch is None:
        return
      self._pending.append(self._thread.submit(self._draw, epoch))

  def next(self) -> jax.Array:
    if not self._depth:
      return self._draw(next(self._epochs))
    batches = self._pending.popleft().result()
    self._top_up()
    return batches

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for future in self._pending:
      future.cancel()
    self._thread.shutdown(wait=True)


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
