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

Teachers always run with frozen BatchNorm statistics (PyTorch `.eval()` in every reference).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from unlearn_jax.train.losses import cross_entropy, kl_divergence

PyTree = Any
GROUPS = ("retain", "forget")
NEEDS = ("labels", "random_labels", "teacher", "bad_teacher", "temperature")


@dataclasses.dataclass(frozen=True)
class Term:
  """A loss term: `fn(student_logits, refs) -> scalar`.

  `refs` holds what `needs` asks for: 'labels' -> refs['y'], 'random_labels' -> refs['random_y'],
  'teacher' -> refs['teacher_logits'], 'bad_teacher' -> refs['bad_teacher_logits'],
  'temperature' -> refs['temperature'] (the method's `temperature` hyperparameter).
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


TERMS: dict[str, Term] = {
    "retain_ce": Term("retain", ("labels",), lambda z, r: cross_entropy(z, r["y"])),
    "forget_ce": Term("forget", ("labels",), lambda z, r: cross_entropy(z, r["y"])),
    "forget_random_ce": Term("forget", ("random_labels",),
                             lambda z, r: cross_entropy(z, r["random_y"])),
    "retain_kl": Term("retain", ("teacher", "temperature"),
                      lambda z, r: kl_divergence(r["teacher_logits"], z, r["temperature"])),
    "forget_kl": Term("forget", ("teacher", "temperature"),
                      lambda z, r: kl_divergence(r["teacher_logits"], z, r["temperature"])),
    "forget_bad_kl": Term("forget", ("bad_teacher", "temperature"),
                          lambda z, r: kl_divergence(r["bad_teacher_logits"], z,
                                                     r["temperature"])),
}


def register_term(name: str, term: Term) -> None:
  """Adds a loss term usable in `Phase(terms=...)`. Names must be new."""
  if name in TERMS:
    raise ValueError(f"Term {name!r} already exists; registered terms: {sorted(TERMS)}.")
  TERMS[name] = term


def get_term(name: str) -> Term:
  if name not in TERMS:
    raise ValueError(f"Unknown loss term {name!r}; registered terms: {sorted(TERMS)}.")
  return TERMS[name]


def term_groups(term_names) -> tuple[str, ...]:
  """The batch groups the terms need, in the fixed order retain, forget."""
  used = {get_term(t).group for t in term_names}
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
