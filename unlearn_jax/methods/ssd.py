"""The 'ssd' method: selective synaptic dampening of every member, training-free."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from unlearn_jax import compile_cache
from unlearn_jax.methods import importance
from unlearn_jax.methods.method import Method
from unlearn_jax.train.state import TrainState, Variables

REFERENCE_SETS = ("train", "retain")

_dampen_members = compile_cache.jit(jax.vmap(importance.ssd_dampen))


def ssd(method: Method, model, original: Variables, data, retain_idx, forget_idx, mask, hp, *,
        batch_size: int, strategy) -> tuple[TrainState, dict]:
  """Dampens the parameters more important to the forget set than to the reference set.

  Returns a state with the dampened parameters (step 0, no optimizer state) and the fraction
  of each member's active parameters that were dampened ('selected_fraction').
  """
  reference = method.options["reference_set"]
  if reference not in REFERENCE_SETS:
    raise ValueError(f"Unknown SSD reference_set {reference!r}; allowed: {REFERENCE_SETS}.")
  ref_idx = jnp.concatenate([retain_idx, forget_idx], axis=-1) if reference == "train" else retain_idx
  forget_imp = importance.ssd_importances(model, original, data, forget_idx,
                                          batch_size=batch_size, strategy=strategy)
  ref_imp = importance.ssd_importances(model, original, data, ref_idx, batch_size=batch_size,
                                       strategy=strategy)
  params, selected = _dampen_members(original.params, forget_imp, ref_imp, mask,
                                     hp["selection_weighting"], hp["dampening_constant"])
  fraction = importance.count_active(selected) / importance.count_active(mask)
  state = TrainState(jnp.zeros(fraction.shape, jnp.int32), params, original.batch_stats, ())
  return state, {"selected_fraction": fraction}
