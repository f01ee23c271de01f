"""Unlearning methods as optax transforms over per-term gradients, and their runner.

    method = unlearn_jax.methods.get("neggrad_plus", alpha=0.95)
    state, metrics = unlearn_jax.methods.unlearn(method, model, originals, data, retain_idx,
                                                 forget_idx, keys, hparams, active_mask, ...)

Modules: transforms (optax building blocks), terms (loss terms, per-term gradients),
importance (SalUn saliency, SSD importances), registry (Method, Phase, built-ins), runner.
"""
from unlearn_jax.methods.importance import (accumulate_gradients, saliency_masks, ssd_dampen,
                                            ssd_importances, top_fraction_mask)
from unlearn_jax.methods.registry import (BUILTIN_METHODS, CONTEXT_ARGS, REGISTRY, Method, Phase,
                                          get, names, register)
from unlearn_jax.methods.runner import (expand_grid, grid_points, make_phase_step, member_hparams,
                                        repeat_members, unlearn)
from unlearn_jax.methods.terms import TERMS, Term, per_term_grads, register_term
from unlearn_jax.methods.transforms import (AddL1State, CombineTermsState, MaskedHardState,
                                            add_l1, combine_terms, l1_strength, masked_hard,
                                            sgd_with_wd)

__all__ = [
    "AddL1State", "BUILTIN_METHODS", "CONTEXT_ARGS", "CombineTermsState", "MaskedHardState",
    "Method", "Phase", "REGISTRY", "TERMS", "Term", "accumulate_gradients", "add_l1",
    "combine_terms", "expand_grid", "get", "grid_points", "l1_strength", "make_phase_step",
    "masked_hard", "member_hparams", "names", "per_term_grads", "register", "register_term",
    "repeat_members", "saliency_masks", "sgd_with_wd", "ssd_dampen", "ssd_importances",
    "top_fraction_mask", "unlearn",
]
