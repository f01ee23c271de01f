"""Unlearning methods as optax transforms over per-term gradients, and their runner.

    method = unlearn_jax.methods.get("neggrad_plus", alpha=0.95)
    state, metrics = unlearn_jax.methods.unlearn(
        method, model, originals, ForgetTask(data, retain_idx, forget_idx),
        MemberInputs(keys, hparams, active_mask), RunSettings(epochs=5))

Modules: transforms (optax building blocks), terms (loss terms, per-term gradients), method
(Method, Phase), builtins (the built-in methods), registry (get/register/names), grid (member-axis
grids), importance (SalUn saliency, SSD importances), layer_select (the layers CF-k, EU-k and
weight negation train, re-initialise or negate), phase_step (one step of a phase),
gradient / retrain / ssd (running each kind), unlearning (the records and `unlearn`).
"""
from unlearn_jax.methods.builtins import BUILTIN_METHODS
from unlearn_jax.methods.grid import expand_grid, grid_points, member_hparams, repeat_members
from unlearn_jax.methods.importance import (accumulate_gradients, count_active, salient_count,
                                            saliency_masks, ssd_dampen, ssd_importances,
                                            top_count_mask, top_fraction_mask)
from unlearn_jax.methods.method import CONTEXT_ARGS, Method, Phase
from unlearn_jax.methods.phase_step import make_phase_step
from unlearn_jax.methods.registry import REGISTRY, deviations, get, names, register
from unlearn_jax.methods.terms import TERMS, Term, per_term_grads, register_term
from unlearn_jax.methods.transforms import (AddL1State, CombineTermsState, DecayTowardStartState,
                                            MaskedHardState, OrthogonalShrinkState,
                                            PerTermSGDState, add_decay_toward_start, add_l1,
                                            add_orthogonal_shrink, combine_terms, l1_strength,
                                            masked_hard, orthogonal_complement, per_term_sgd,
                                            sgd_toward_start, sgd_with_wd)
from unlearn_jax.methods.unlearning import ForgetTask, MemberInputs, RunSettings, unlearn

__all__ = [
    "AddL1State", "BUILTIN_METHODS", "CONTEXT_ARGS", "CombineTermsState",
    "DecayTowardStartState", "ForgetTask", "MaskedHardState", "MemberInputs", "Method",
    "OrthogonalShrinkState", "PerTermSGDState", "Phase", "REGISTRY", "RunSettings", "TERMS",
    "Term", "accumulate_gradients", "add_decay_toward_start", "add_l1", "add_orthogonal_shrink",
    "combine_terms", "count_active", "deviations", "expand_grid", "get", "grid_points",
    "l1_strength", "make_phase_step", "masked_hard", "member_hparams", "names",
    "orthogonal_complement", "per_term_grads", "per_term_sgd", "register", "register_term",
    "repeat_members", "salient_count", "saliency_masks", "sgd_toward_start", "sgd_with_wd",
    "ssd_dampen", "ssd_importances", "top_count_mask", "top_fraction_mask", "unlearn",
]
