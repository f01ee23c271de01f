"""Member-stacked training: variables and state, step, batches, execution strategies, trainer."""
from unlearn_jax.train.batches import epoch_batches, index_batches, member_batches
from unlearn_jax.train.buckets import width_buckets
from unlearn_jax.train.drivers import Driver, Strategy, auto_strategy, resolve_strategy
from unlearn_jax.train.losses import cross_entropy, kl_divergence
from unlearn_jax.train.member_chunks import map_member_chunks
from unlearn_jax.train.members import (Member, any_optimizer, diverged_members, init_members,
                                       init_variables, member_grid, member_keys, take_members,
                                       variable_structure)
from unlearn_jax.train.optimizers import make_optimizer
from unlearn_jax.train.state import (TrainState, Variables, apply_model, create_train_state,
                                     make_train_step)
from unlearn_jax.train.trainer import Progress, predict_logits, train

__all__ = [
    "Driver", "Member", "Progress", "Strategy", "TrainState", "Variables", "any_optimizer",
    "apply_model", "auto_strategy", "create_train_state", "cross_entropy", "diverged_members",
    "epoch_batches", "index_batches", "init_members", "init_variables", "kl_divergence",
    "make_optimizer", "make_train_step", "map_member_chunks", "member_batches", "member_grid",
    "member_keys", "predict_logits", "resolve_strategy", "take_members", "train",
    "variable_structure", "width_buckets",
]
