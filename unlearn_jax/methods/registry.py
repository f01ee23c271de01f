"""The registry of unlearning methods: the built-ins and whatever users `register`.

    method = registry.get("neggrad_plus", alpha=0.95)   # defaults or options overridden
    registry.deviations()["bad_teacher"]                  # how it departs from its reference
"""
from __future__ import annotations

from unlearn_jax.methods.builtins import BUILTIN_METHODS
from unlearn_jax.methods.method import Method
from unlearn_jax.registry import Registry

REGISTRY: Registry[Method] = Registry("unlearning method",
                                      {m.name: m for m in BUILTIN_METHODS})


def register(method: Method, overwrite: bool = False) -> Method:
  """Adds a method to the registry so `get(method.name)` finds it."""
  return REGISTRY.register(method.name, method, overwrite)


def names() -> list[str]:
  return REGISTRY.names()


def get(name: str, **hparams) -> Method:
  """The registered method `name` with its default hyperparameters overridden by `hparams`."""
  method = REGISTRY.get(name)
  return method.with_hparams(**hparams) if hparams else method


def deviations() -> dict[str, str]:
  """{method name: its documented deviations from the reference code} (non-empty ones)."""
  return {name: m.deviations for name, m in REGISTRY.items() if m.deviations}
