"""Model variables, training state and the single-model training step."""
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from unlearn_jax.data.augment import augment_batch
from unlearn_jax.train.losses import cross_entropy

PyTree = Any


class Variables(NamedTuple):
  """What `apply_model` needs: parameters and BatchNorm statistics (`{}` without BatchNorm).

  The one variables type of the library (originals, teachers, initial variables), member-stacked
  or not; a plain pytree, so it goes through jit, vmap, padding and checkpoints unchanged.
  """
  params: PyTree
  batch_stats: PyTree

  @classmethod
  def from_flax(cls, variables: Mapping[str, PyTree]) -> "Variables":
    """From a Flax variables dict (`model.init`'s {'params', 'batch_stats'?})."""
    return cls(variables["params"], variables.get("batch_stats", {}) or {})


class TrainState(NamedTuple):
  """Everything that changes during training; a plain pytree (member-stacked in sweeps)."""
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree

  @property
  def variables(self) -> Variables:
    return Variables(self.params, self.batch_stats)


def apply_model(model: nn.Module, params: PyTree, batch_stats: PyTree, x: jax.Array,
                bn_train: bool) -> tuple[jax.Array, PyTree]:
  """Logits and updated BatchNorm statistics.

  `bn_train=True` normalises with batch statistics and updates the running averages (training
  mode); `bn_train=False` uses the stored running averages and leaves them unchanged (frozen BN,
  also used for evaluation). Models without BatchNorm have empty `batch_stats`.
  """
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  if bn_train and batch_stats:
    logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return logits, updates["batch_stats"]
  return model.apply(variables, x, train=False), batch_stats


def create_train_state(model: nn.Module, variables: Variables | Mapping[str, PyTree],
                       tx: optax.GradientTransformation) -> TrainState:
  """A step-0 state of one model from `Variables` or a Flax variables dict."""
  del model  # the state does not depend on the module, only on its variables
  if not isinstance(variables, Variables):
    variables = Variables.from_flax(variables)
  return TrainState(jnp.zeros((), jnp.int32), variables.params, variables.batch_stats,
                    tx.init(variables.params))


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, augment: bool):
  """Returns `step(state, data, batch_idx, key) -> (state, metrics)` for ONE model.

  `data` is {'x', 'y'} of the whole training pool on device; `batch_idx` picks this step's
  batch, so the data stays put and only indices differ between members.
  """
  def step(state: TrainState, data, batch_idx, key):
    x, y = data["x"][batch_idx], data["y"][batch_idx]
    if augment:
      x = augment_batch(key, x)

    def loss_fn(params):
      logits, batch_stats = apply_model(model, params, state.batch_stats, x, bn_train=True)
      return cross_entropy(logits, y), (batch_stats, logits)

    (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "error": jnp.mean(jnp.argmax(logits, -1) != y)}
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

  return step
