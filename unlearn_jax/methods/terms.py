"""Loss terms of unlearning methods and their per-term gradients.

A term is a scalar loss on one batch group ('retain' or 'forget') of the student's logits, with
whatever reference it needs: the true labels, uniformly random labels, the frozen original model
(the teacher) or a randomly initialised "bad" teacher. A phase names the terms it computes; the
step runs the student once per group, takes one gradient per term (one forward pass, one
backward pass per term), and gives the optimizer the dict `{term: gradient}` (see
transforms.combine_terms).

Users add terms with `register_term`; the built-in ones are:

  retain_ce          CE(student(x_r), y_r)
  forget_ce          CE(student(x_f), y_f)
  forget_random_ce   CE(student(x_f), u) with u uniform over all classes, fresh every step
  retain_kl          KL_T(teacher(x_r) || student(x_r)) * T^2
  forget_kl          KL_T(teacher(x_f) || student(x_f)) * T^2
  forget_bad_kl      KL_T(bad_teacher(x_f) || student(x_f)) * T^2
  retain_kl_mean     retain_kl / (C * T^2)       PyTorch's kl_div(reduction='mean'): the mean
  forget_bad_kl_mean forget_bad_kl / (C * T^2)   over the B * C batch elements (Bad Teacher's code)
  forget_uniform_kl  KL(uniform || softmax(student(x_f))), batch mean
  forget_contrast    -mean_ij log_softmax_j(z_f,i . z_r,j / T): z_f the student's forget logits,
                     z_r its retain logits on a paired retain batch, held fixed (the NeurIPS
                     2023 challenge winner's contrastive term: every forget example equally
                     similar to every retained one)

Teachers always run with frozen BatchNorm statistics (PyTorch `.eval()` in every reference).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from unlearn_jax.registry import Registry
from unlearn_jax.train.losses import cross_entropy, kl_divergence

PyTree = Any
GROUPS = ("retain", "forget")
NEEDS = ("labels", "random_labels", "teacher", "bad_teacher", "temperature", "retain_logits")


@dataclasses.dataclass(frozen=True)
class Term:
  """A loss term: `fn(student_logits, refs) -> scalar`.

  `refs` holds what `needs` asks for: 'labels' -> refs['y'], 'random_labels' -> refs['random_y'],
  'teacher' -> refs['teacher_logits'], 'bad_teacher' -> refs['bad_teacher_logits'],
  'temperature' -> refs['temperature'] (the method's `temperature` hyperparameter),
  'retain_logits' -> refs['retain_logits'] (a forget term: the student's logits on the paired
  retain batch, without gradient).
  """
  group: str
  needs: tuple[str, ...]
  fn: Callable[[jax.Array, dict], jax.Array]

  def __post_init__(self):
    if self.group not in GROUPS:
      raise ValueError(f"Unknown term group {self.group!r}; allowed: {GROUPS}.")
    bad = sorted(set(self.needs) - set(NEEDS))
    if bad:
      raise ValueError(f"Unknown term needs {bad}; allowed: {NEEDS}.")


def kl_divergence_elementwise_mean(teacher_logits: jax.Array, student_logits: jax.Array,
                                   temperature) -> jax.Array:
  """PyTorch's `kl_div(log_softmax(s / T), softmax(t / T))` with its default reduction='mean':
  the pointwise KL averaged over batch AND classes, no T^2 (= kl_divergence / (C * T^2))."""
  num_classes = student_logits.shape[-1]
  return kl_divergence(teacher_logits, student_logits, temperature) / (
      num_classes * temperature**2)


def uniform_kl(student_logits: jax.Array) -> jax.Array:
  """PyTorch's `KLDivLoss(reduction='batchmean')(log_softmax(z), uniform)`."""
  num_classes = student_logits.shape[-1]
  log_p = jax.nn.log_softmax(student_logits.astype(jnp.float32), axis=-1)
  return jnp.mean(-jnp.log(num_classes) - jnp.mean(log_p, axis=-1))


def logit_contrast(forget_logits: jax.Array, retain_logits: jax.Array, temperature) -> jax.Array:
  """-mean over (i, j) of log_softmax_j(z_f,i . z_r,j / T): minimal when every forget example's
  logits are equally similar to every retained example's."""
  sims = forget_logits.astype(jnp.float32) @ retain_logits.astype(jnp.float32).T / temperature
  return -jnp.mean(jax.nn.log_softmax(sims, axis=-1))


def _kl(teacher: str, kl=kl_divergence):
  return lambda z, r: kl(r[f"{teacher}_logits"], z, r["temperature"])


TERMS: Registry[Term] = Registry("loss term", {
    "retain_ce": Term("retain", ("labels",), lambda z, r: cross_entropy(z, r["y"])),
    "forget_ce": Term("forget", ("labels",), lambda z, r: cross_entropy(z, r["y"])),
    "forget_random_ce": Term("forget", ("random_labels",),
                             lambda z, r: cross_entropy(z, r["random_y"])),
    "retain_kl": Term("retain", ("teacher", "temperature"), _kl("teacher")),
    "forget_kl": Term("forget", ("teacher", "temperature"), _kl("teacher")),
    "forget_bad_kl": Term("forget", ("bad_teacher", "temperature"), _kl("bad_teacher")),
    "retain_kl_mean": Term("retain", ("teacher", "temperature"),
                           _kl("teacher", kl_divergence_elementwise_mean)),
    "forget_bad_kl_mean": Term("forget", ("bad_teacher", "temperature"),
                               _kl("bad_teacher", kl_divergence_elementwise_mean)),
    "forget_uniform_kl": Term("forget", (), lambda z, r: uniform_kl(z)),
    "forget_contrast": Term("forget", ("retain_logits", "temperature"),
                            lambda z, r: logit_contrast(z, r["retain_logits"], r["temperature"])),
})


def register_term(name: str, term: Term) -> None:
  """Adds a loss term usable in `Phase(terms=...)`. Names must be new."""
  TERMS.register(name, term)


def get_term(name: str) -> Term:
  return TERMS.get(name)


def term_groups(term_names) -> tuple[str, ...]:
  """The batch groups the terms need, in the fixed order retain, forget."""
  used = {get_term(t).group for t in term_names}
  return tuple(g for g in GROUPS if g in used)


def batch_groups(term_names) -> tuple[str, ...]:
  """The batch groups a step draws: the terms' groups, and the retain group for terms that
  compare with retain logits."""
  used = set(term_groups(term_names))
  if "retain_logits" in term_needs(term_names):
    used.add("retain")
  return tuple(g for g in GROUPS if g in used)


def term_needs(term_names) -> set[str]:
  return {n for t in term_names for n in get_term(t).needs}


def per_term_grads(loss_fn: Callable[[PyTree], tuple[dict, Any]], params: PyTree
                   ) -> tuple[dict, dict, Any]:
  """Gradients of every term of `loss_fn(params) -> ({term: scalar}, aux)`.

  One forward pass (`jax.vjp`) and one backward pass per term.

  Returns:
    ({term: gradient tree}, {term: loss value}, aux)
  """
  losses, vjp_fn, aux = jax.vjp(loss_fn, params, has_aux=True)
  grads = {}
  for name in losses:
    cotangent = {k: (jnp.ones_like(v) if k == name else jnp.zeros_like(v))
                 for k, v in losses.items()}
    grads[name] = vjp_fn(cotangent)[0]
  return grads, losses, aux
