"""The built-in unlearning methods: their optimizer factories and declarations.

Each factory is an ordinary function of numeric keyword hyperparameters, so
`optax.inject_hyperparams(f, hyperparam_dtype=jnp.float32)` lifts them all. Every method states
how it departs from its reference code in `Method.deviations` (`registry.deviations()` lists
them); static options make the reference settings reachable where they differ:

    methods.get("neggrad_plus", momentum=0.0, weight_decay_toward="original", bn_train=False)
    methods.get("bad_teacher", loss_scale="reference")
"""
from __future__ import annotations

from typing import Any, Mapping

import optax

from unlearn_jax.methods.method import Method, Phase
from unlearn_jax.methods.transforms import (add_l1, add_orthogonal_shrink, combine_terms,
                                            masked_hard, per_term_sgd, sgd_toward_start,
                                            sgd_with_wd)


def finetune_tx(learning_rate, weight_decay, momentum):
  return optax.chain(combine_terms(retain_ce=1.0),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def last_layers_tx(learning_rate, weight_decay, momentum, layer_mask=None):
  # Layers outside the mask never move: gradient, weight decay and momentum masked.
  return optax.chain(combine_terms(retain_ce=1.0),
                     masked_hard(sgd_with_wd(learning_rate, weight_decay, momentum), layer_mask))


def gradient_ascent_tx(learning_rate, weight_decay, momentum):
  return optax.chain(combine_terms(forget_ce=-1.0),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def neggrad_plus_tx(learning_rate, alpha, weight_decay, momentum):
  return optax.chain(combine_terms(retain_ce=alpha, forget_ce=-(1.0 - alpha)),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def neggrad_plus_toward_original_tx(learning_rate, alpha, weight_decay, momentum):
  # The optimizer starts at the original model, so "toward the start" is toward the original.
  return optax.chain(combine_terms(retain_ce=alpha, forget_ce=-(1.0 - alpha)),
                     sgd_toward_start(learning_rate, weight_decay, momentum))


def random_labels_tx(learning_rate, weight_decay, momentum):
  return optax.chain(combine_terms(forget_random_ce=1.0, retain_ce=1.0),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def l1_sparse_tx(learning_rate, gamma, weight_decay, momentum, steps_per_epoch, total_steps):
  return optax.chain(combine_terms(retain_ce=1.0),
                     add_l1(gamma, decay_steps=total_steps, period=steps_per_epoch),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def l1_sparse_normalized_tx(learning_rate, gamma, weight_decay, momentum, steps_per_epoch,
                            total_steps, num_active):
  return optax.chain(combine_terms(retain_ce=1.0),
                     add_l1(gamma, decay_steps=total_steps, period=steps_per_epoch,
                            normalizer=num_active),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def salun_tx(learning_rate, weight_decay, momentum, saliency_mask=None):
  return optax.chain(combine_terms(forget_random_ce=1.0, retain_ce=1.0),
                     masked_hard(sgd_with_wd(learning_rate, weight_decay, momentum),
                                 saliency_mask))


def scrub_tx(learning_rate, alpha, gamma, weight_decay, momentum):
  # The max pass computes only forget_kl, the min pass only retain_ce and retain_kl.
  return optax.chain(combine_terms(forget_kl=-1.0, retain_ce=gamma, retain_kl=alpha),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def bad_teacher_tx(learning_rate, forget_weight, weight_decay, momentum):
  return optax.chain(combine_terms(retain_kl=1.0, forget_bad_kl=forget_weight),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def bad_teacher_reference_scale_tx(learning_rate, forget_weight, weight_decay, momentum):
  return optax.chain(combine_terms(retain_kl_mean=1.0, forget_bad_kl_mean=forget_weight),
                     sgd_with_wd(learning_rate, weight_decay, momentum))


def minnorm_og_tx(learning_rate, weight_decay, shrink, shrink_decay, descent_epochs,
                  steps_per_epoch, total_steps):
  # AdamW on the retain CE plus the projected shrink, both taken at the current parameters (as
  # the reference code: it projects, then steps with the gradient computed before).
  return optax.chain(combine_terms(retain_ce=1.0),
                     optax.adamw(learning_rate, weight_decay=weight_decay),
                     add_orthogonal_shrink(shrink, shrink_decay,
                                           total_steps - descent_epochs * steps_per_epoch))


def fanchuan_tx(uniform_lr, contrast_lr, retain_lr, momentum, retain_weight_decay):
  # The reference steps each phase with an SGD of its own: one momentum buffer per term.
  return per_term_sgd({"forget_uniform_kl": uniform_lr, "forget_contrast": contrast_lr,
                       "retain_ce": retain_lr}, momentum,
                      {"retain_ce": retain_weight_decay})


def _choice(method: str, options: Mapping[str, Any], name: str, allowed) -> Any:
  value = options[name]
  if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
    raise ValueError(f"{method}: option {name}={value!r} is not one of {list(allowed)}.")
  return value


def _neggrad_plus_options(options: Mapping[str, Any]) -> dict:
  toward = _choice("neggrad_plus", options, "weight_decay_toward", ("zero", "original"))
  bn_train = _choice("neggrad_plus", options, "bn_train", (True, False))
  return {"tx": neggrad_plus_tx if toward == "zero" else neggrad_plus_toward_original_tx,
          "phases": (Phase("paired", ("retain_ce", "forget_ce"), "retain", bn_train=bn_train),)}


def _bad_teacher_options(options: Mapping[str, Any]) -> dict:
  scale = _choice("bad_teacher", options, "loss_scale", ("hinton", "reference"))
  if scale == "hinton":
    return {"tx": bad_teacher_tx,
            "phases": (Phase("paired", ("retain_kl", "forget_bad_kl"), "retain"),)}
  return {"tx": bad_teacher_reference_scale_tx,
          "phases": (Phase("paired", ("retain_kl_mean", "forget_bad_kl_mean"), "retain"),)}


_SGD = {"momentum": 0.9, "weight_decay": 5e-4}
_RETAIN_FT = (Phase("retain", ("retain_ce",), "retain"),)
_RL_PHASES = (Phase("forget", ("forget_random_ce",), "forget"),
              Phase("retain", ("retain_ce",), "retain"))
_RANDOM_LABELS_BRANCH = ("Follows the reference's CIFAR-10 branch: per epoch a pass over the "
                         "forget set with fresh uniformly random labels, then a pass over the "
                         "retain set.")

BUILTIN_METHODS = (
    Method(
        "retrain", "Train from scratch on the retain set (the reference). Needs init_variables. "
        "BN: train mode (the trainer).", uses_forget=False,
        defaults={"learning_rate": 0.05, "weight_decay": 5e-4}, grid={"learning_rate": (0.05,)},
        epochs=30, kind="retrain", options={"schedule": "cosine", "momentum": 0.9}),
    Method(
        "finetune", "CE on the retain set. BN: train mode.", uses_forget=False,
        defaults={"learning_rate": 0.01, **_SGD},
        grid={"learning_rate": (0.003, 0.01, 0.03, 0.1)}, epochs=10, phases=_RETAIN_FT,
        tx=finetune_tx),
    Method(
        "cf_k", "Catastrophic forgetting of the last k layers (Goel et al. 2022): CE on the "
        "retain set updating only the last `last_layers` layers (models.layers.layer_groups); "
        "the earlier layers, their BatchNorm statistics included, never change. BN: train mode "
        "(batch statistics normalise every layer; only the last k layers' running averages "
        "update).", uses_forget=False,
        defaults={"learning_rate": 0.01, "last_layers": 1.0, **_SGD},
        grid={"last_layers": (1.0, 2.0), "learning_rate": (0.01, 0.1)}, epochs=10,
        phases=_RETAIN_FT, tx=last_layers_tx,
        deviations="SGD with momentum 0.9 and weight decay 5e-4 like fine-tuning here; a layer "
        "is a weight layer with the BatchNorm that follows it (a residual block counts as one)."),
    Method(
        "eu_k", "Exact unlearning of the last k layers (Goel et al. 2022): the last "
        "`last_layers` layers re-initialised (the member's fresh padded initialisation, "
        "init_variables) and trained on the retain set alone, the earlier layers frozen as in "
        "cf_k. Needs init_variables. BN: as cf_k.", uses_forget=False,
        defaults={"learning_rate": 0.05, "last_layers": 1.0, **_SGD},
        grid={"last_layers": (1.0, 2.0), "learning_rate": (0.01, 0.1)}, epochs=10,
        phases=_RETAIN_FT, tx=last_layers_tx, start="reinit_last_layers",
        deviations="Trains the re-initialised layers for the method's epochs (10 by default) "
        "with a constant learning rate, not the original's full schedule; layers as cf_k."),
    Method(
        "weight_negation", "NoT (Khalil et al. 2025): layer `negated_layer` (0: the first, the "
        "paper's choice) multiplied by -1 (its kernel and bias, not the BatchNorm after it), "
        "then CE on the retain set over every layer. BN: train mode.", uses_forget=False,
        defaults={"learning_rate": 0.01, "negated_layer": 0.0, **_SGD},
        grid={"learning_rate": (0.003, 0.01, 0.03, 0.1)}, epochs=10, phases=_RETAIN_FT,
        tx=finetune_tx, start="negate_layer",
        deviations="Centralised: the paper negates the global model of federated learning and "
        "fine-tunes it over rounds of clients' retained data; here one model is fine-tuned on "
        "the retain set with SGD."),
    Method(
        "gradient_ascent", "Ascend CE on the forget set. BN: train mode.", uses_forget=True,
        defaults={"learning_rate": 1e-4, **_SGD},
        grid={"learning_rate": (1e-4, 3e-4, 1e-3, 3e-3)}, epochs=5,
        phases=(Phase("forget", ("forget_ce",), "forget"),), tx=gradient_ascent_tx),
    Method(
        "neggrad_plus", "alpha*CE(retain) - (1-alpha)*CE(forget) on paired batches, a pass over "
        "the retain set with forget batches cycled. BN: train mode (option bn_train).",
        uses_forget=True, defaults={"learning_rate": 0.01, "alpha": 0.99, **_SGD},
        grid={"alpha": (0.9, 0.95, 0.99, 0.999), "learning_rate": (0.005, 0.01)}, epochs=5,
        options={"weight_decay_toward": "zero", "bn_train": True},
        apply_options=_neggrad_plus_options,
        deviations="SGD with momentum 0.9 and weight decay toward zero (PyTorch's weight_decay) "
        "with BatchNorm in train mode, where the SCRUB notebook's NegGrad+ uses plain SGD, an L2 "
        "pull weight_decay/2*||theta - theta_original||^2 toward the ORIGINAL weights and frozen "
        "BatchNorm. Reference setting: momentum=0.0, weight_decay_toward='original', "
        "bn_train=False."),
    Method(
        "random_labels", "Per epoch: CE with fresh uniform random labels over the forget set, "
        "then CE over the retain set. BN: train mode.", uses_forget=True,
        defaults={"learning_rate": 0.01, **_SGD},
        grid={"learning_rate": (0.003, 0.01, 0.03)}, epochs=10, phases=_RL_PHASES,
        tx=random_labels_tx, deviations=_RANDOM_LABELS_BRANCH),
    Method(
        "l1_sparse", "Retain-set CE + gamma_e*||theta||_1, gamma_e = gamma*(1 - e/E) per epoch "
        "(raw l1 norm: stronger on wider nets). BN: train mode.", uses_forget=False,
        defaults={"learning_rate": 0.01, "gamma": 5e-5, **_SGD},
        grid={"gamma": (1e-5, 3e-5, 1e-4, 3e-4), "learning_rate": (0.005, 0.01)}, epochs=10,
        phases=_RETAIN_FT, tx=l1_sparse_tx),
    # gamma here = raw gamma * N: on the 11,171,146-parameter ResNet-18 (k=64) of the study the
    # default 500 is 4.48e-5 per parameter (close to l1_sparse's 5e-5), and the grid spans raw
    # 4.5e-6 .. 1.3e-4 at that size.
    Method(
        "l1_sparse_normalized", "l1_sparse with the penalty divided by the member's ACTIVE "
        "parameter count (gamma * mean |theta|), comparable across widths. BN: train mode.",
        uses_forget=False, defaults={"learning_rate": 0.01, "gamma": 500.0, **_SGD},
        grid={"gamma": (50.0, 150.0, 500.0, 1500.0), "learning_rate": (0.005, 0.01)},
        epochs=10, phases=_RETAIN_FT, tx=l1_sparse_normalized_tx,
        deviations="Not in the reference: l1_sparse with a per-parameter penalty."),
    Method(
        "salun", "Random labels restricted to the top salient_fraction of ACTIVE weights by "
        "|grad of forget CE| at the original model (frozen BN); non-salient weights never move "
        "(gradient, weight decay and momentum masked). BN: train mode.", uses_forget=True,
        defaults={"learning_rate": 0.01, "salient_fraction": 0.5, **_SGD},
        grid={"salient_fraction": (0.1, 0.3, 0.5, 0.7), "learning_rate": (0.005, 0.01)},
        epochs=10, phases=_RL_PHASES, tx=salun_tx,
        deviations="The mask freezes non-salient weights completely, weight decay and momentum "
        "included (the current Unlearn-Saliency code restores masked weights after each step to "
        "the same effect), and ranks the member's ACTIVE weights only; it keeps int(N * r) of "
        "them (truncation, as the reference). " + _RANDOM_LABELS_BRANCH),
    Method(
        "scrub", "Per epoch e: if e < msteps a max pass over the forget set minimising -KL_T to "
        "the frozen original; then a min pass over the retain set minimising gamma*CE + "
        "alpha*KL_T. BN: train mode (teacher frozen).", uses_forget=True,
        defaults={"learning_rate": 5e-4, "alpha": 0.001, "gamma": 0.99, "temperature": 4.0,
                  "msteps": 2.0, **_SGD},
        grid={"msteps": (1.0, 2.0, 3.0), "alpha": (0.001, 0.5),
              "learning_rate": (5e-4, 2e-3)}, epochs=5,
        phases=(Phase("max", ("forget_kl",), "forget", while_epoch_below="msteps"),
                Phase("min", ("retain_ce", "retain_kl"), "retain")), tx=scrub_tx,
        deviations="A constant learning rate (the reference decays it 10x at chosen epochs)."),
    Method(
        "bad_teacher", "KL_T to the original model on retain batches + forget_weight * KL_T to "
        "a randomly initialised teacher on paired forget batches. Needs init_variables (the "
        "random teacher). BN: train mode (teachers frozen).", uses_forget=True,
        defaults={"learning_rate": 0.01, "forget_weight": 1.0, "temperature": 1.0,
                  "momentum": 0.9, "weight_decay": 0.0},
        grid={"learning_rate": (0.001, 0.003, 0.01, 0.03), "forget_weight": (0.3, 1.0)},
        epochs=1, options={"loss_scale": "hinton"}, apply_options=_bad_teacher_options,
        deviations="SGD with momentum like every other method here (the reference uses Adam, lr "
        "1e-4). Paired retain/forget batches weighted by forget_weight instead of one shuffled "
        "mixture of the forget set and 30% of the retain set: the mixture's operating point is "
        "forget_weight ~ the forget fraction of a mixed batch (about 0.017 for 200 forget "
        "examples among 39,800 retained), which the default grid (0.3, 1.0) leaves out. The "
        "loss is the batch-mean KL times T^2, C*T^2 times the reference's kl_div(reduction="
        "'mean'); option loss_scale='reference' uses the reference's scaling."),
    Method(
        "minnorm_og", "MinNorm-OG (Block, Mokhtari, Shakkottai 2025): per forget batch, on a "
        "retain batch, an AdamW step on the retain CE plus theta -= c_t * P(theta), P the "
        "projection onto the orthogonal complement of the gradients of the largest logit of "
        "the batch's first 50 retain examples (frozen BN) at the current parameters: the "
        "minimum-norm step that leaves those outputs unchanged to first order; c_t = shrink * "
        "shrink_decay^t; the last descent_epochs epochs without the shrink. BN: train mode.",
        uses_forget=False,
        defaults={"learning_rate": 1e-3, "weight_decay": 0.01, "shrink": 0.1,
                  "shrink_decay": 0.9, "descent_epochs": 0.0},
        grid={"shrink": (0.01, 0.1, 0.5), "learning_rate": (1e-4, 1e-3)}, epochs=10,
        phases=(Phase("paired", ("retain_ce",), "forget", steps_only=True,
                      output_constraints=50),), tx=minnorm_og_tx,
        deviations="The constraint gradients are taken with frozen BatchNorm (the reference "
        "takes per-example gradients in train mode) from the first 50 examples of each retain "
        "batch (the reference draws them class-balanced), and projected through a float32 "
        "pseudo-inverse that drops directions below 1e-3 of the largest singular value (the "
        "reference: a float64 QR that keeps every direction). The whole retain set is "
        "accessible (the reference's experiments give it 1% or 0.1% of it). The forget examples "
        "only set the number of steps, as in the reference; the method never sees them."),
    Method(
        "fanchuan", "The NeurIPS 2023 unlearning challenge's winner: at epoch 0 a pass over the "
        "forget set minimising KL(uniform || softmax) (while epoch < uniform_epochs); then per "
        "epoch a pass over the forget set minimising the contrastive term forget_contrast "
        "(forget logits against the logits of a paired retain batch, temperature T) and a pass "
        "of CE over the retain set; each phase with an SGD of its own. BN: train mode.",
        uses_forget=True,
        defaults={"uniform_lr": 0.005, "contrast_lr": 3e-4, "retain_lr": 0.002,
                  "momentum": 0.9, "retain_weight_decay": 0.01, "temperature": 1.15,
                  "uniform_epochs": 1.0},
        grid={"contrast_lr": (1e-4, 3e-4, 1e-3), "retain_lr": (0.002, 0.01)}, epochs=8,
        phases=(Phase("uniform", ("forget_uniform_kl",), "forget",
                      while_epoch_below="uniform_epochs"),
                Phase("contrast", ("forget_contrast",), "forget"),
                Phase("retain", ("retain_ce",), "retain")), tx=fanchuan_tx,
        deviations="Constant learning rates: the reference anneals the contrastive phase's by "
        "cosine to 1e-6 over its 8 epochs. retain_lr 0.002 is the reference's 0.001 * batch / "
        "64 at batch 128. The retain logits of the contrastive term come from the student in "
        "the phase's BatchNorm mode with that forward's statistics update discarded (the "
        "reference's train-mode forward updates them)."),
    Method(
        "ssd", "Selective synaptic dampening (Foster et al. 2023), training-free: diagonal "
        "Fisher importances (mean over batches of the squared batch-mean CE gradient, frozen BN) "
        "on the forget set and on the reference set (options reference_set='train' (retain + "
        "forget, as the reference code) or 'retain'); where forget > selection_weighting * "
        "reference, multiply by min(dampening_constant * reference / forget, 1).",
        uses_forget=True, defaults={"selection_weighting": 10.0, "dampening_constant": 1.0},
        grid={"selection_weighting": (1.0, 5.0, 10.0, 50.0),
              "dampening_constant": (0.5, 1.0, 2.0)}, epochs=0, kind="ssd",
        options={"reference_set": "train"}),
)
