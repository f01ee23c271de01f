"""The 'retrain' method: the trainer on the retain set from fresh initial variables."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from unlearn_jax.methods.method import Method
from unlearn_jax.train import optimizers, trainer
from unlearn_jax.train.members import any_optimizer
from unlearn_jax.train.state import TrainState, Variables


def retrain(method: Method, model, init_variables: Variables | None, data, retain_idx, keys,
            hp, *, epochs: int, batch_size: int, strategy, augment: bool
            ) -> tuple[TrainState, dict]:
  """Trains every member from `init_variables` on the retain set (the reference to unlearn to).

  SGD with the method's momentum and learning-rate schedule shape (options), learning rate and
  weight decay per member (`hp`). Returns the trainer's state and last-epoch 'loss', 'error'.
  """
  if init_variables is None:
    raise ValueError("retrain needs init_variables: member-stacked (padded) initial variables, "
                     "e.g. from train.init_members.")
  factory = optimizers.make_optimizer(
      "sgd", method.options["schedule"], total_steps=epochs * (jnp.shape(retain_idx)[-1] // batch_size),
      momentum=method.options["momentum"])
  opt_state = jax.vmap(lambda p, lr, wd: factory(learning_rate=lr, weight_decay=wd).init(p))(
      init_variables.params, hp["learning_rate"], hp["weight_decay"])
  state = TrainState(jnp.zeros((keys.shape[0],), jnp.int32), init_variables.params,
                     init_variables.batch_stats, opt_state)
  return trainer.train(model, any_optimizer(factory), state, data, retain_idx, keys,
                       epochs=epochs, batch_size=batch_size, augment=augment, strategy=strategy,
                       name="retrain")
