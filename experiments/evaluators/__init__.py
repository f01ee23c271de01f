"""Pluggable evaluators (as in big_vision): a registry, and `config.eval.evaluators` naming them.

An evaluator is one module in this package that registers an `Evaluator`. It declares what it
needs (logits of which splits, the paired retrained references, a group of many models of one
width) and which config fields it reads (they key its cached results), and returns metrics:

  * `per_member(outputs, metrics, config) -> {(split, metric): (S,) values}` for every member of
    a model set (original, retrained, or a method's unlearned members);
  * `over_group(stats, reference_stats, config) -> {(split, metric): value}` for a group of
    models of one width against a group of retrained references (scores over many models).

An evaluator's scope is every member, or ('selected') only the models that hyperparameter
selection picks for privacy at the report's lambda, for attacks too costly to run on a whole grid.
The sweep writes one tidy row per value and the report renders whatever rows exist; an evaluator
may name report tables for its metrics. Adding one is one new file here plus its name in the
config list (docs/evaluators.md walks through an example). Modules are discovered on import.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, Mapping

import numpy as np

from unlearn_jax.registry import Registry

Metrics = dict[tuple[str, str], np.ndarray]
SPLITS = ("retain", "forget", "val", "test")


@dataclasses.dataclass(frozen=True)
class Needs:
  """What an evaluator reads.

  splits: logits of these splits (the per-example statistics of `ModelOutputs.stats`);
    'test_triggered' exists only under the backdoor scenario.
  retrained: the paired retrained references' outputs (skipped when evaluating those).
  per_example: (split, statistic) arrays kept for group evaluators, e.g. ('forget', 'logit_conf').
  """
  splits: tuple[str, ...] = SPLITS
  retrained: bool = False
  per_example: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class ReportTable:
  """A report table of one metric per width: original, retrained (if `with_retrained`) and every
  method's selected models at (`goal`, the report's lambda)."""
  title: str
  split: str
  metric: str
  goal: str
  with_retrained: bool = True


@dataclasses.dataclass(frozen=True)
class ModelOutputs:
  """Per-example outputs of a member-stacked model set, and what they are measured against.

  stats: {split: {'loss', 'error', 'confidence', 'pred', 'logit_conf': (S, N)}}.
  labels: {split: (N,)}. splits / scenario: the run's data (`unlearn_jax.data`).
  retrained: the paired retrained references' outputs (member s <-> its own reference), or None.
  retrained_metrics: their metrics, paired the same way, or None.
  """
  stats: Mapping[str, Mapping[str, np.ndarray]]
  labels: Mapping[str, np.ndarray]
  splits: Any
  scenario: Any
  retrained: "ModelOutputs | None" = None
  retrained_metrics: Metrics | None = None


@dataclasses.dataclass(frozen=True)
class Evaluator:
  name: str
  needs: Needs = Needs()
  config_fields: tuple[str, ...] = ()    # dotted config fields read, e.g. 'eval.mia_max_train'
  per_member: Callable[[ModelOutputs, Metrics, Any], Metrics] | None = None
  over_group: Callable[[Mapping, Mapping, Any], dict] | None = None
  tables: tuple[ReportTable, ...] = ()
  version: int = 1                       # bump when the numbers it returns change
  # 'all': every member (every grid point); 'selected': only the models hyperparameter selection
  # picked for privacy at the report's lambda (config.regions.lam), and the originals and retrained
  # references: for attacks too costly to run on a whole grid.
  scope: str = "all"


REGISTRY: Registry[Evaluator] = Registry("evaluator")


def register(evaluator: Evaluator) -> Evaluator:
  return REGISTRY.register(evaluator.name, evaluator)


def config_values(evaluator: Evaluator, config) -> dict:
  """The config fields an evaluator reads, by dotted name (part of its results' cache key)."""
  out = {}
  for field in evaluator.config_fields:
    value = config
    for part in field.split("."):
      value = value[part]
    out[field] = value.to_dict() if hasattr(value, "to_dict") else value
  return out


def from_config(config) -> list[Evaluator]:
  """The evaluators named in `config.eval.evaluators`, in that order (the rows' order)."""
  names = list(config.eval.evaluators)
  REGISTRY.check(names, "config.eval.evaluators")
  if "errors" not in names:
    raise ValueError("config.eval.evaluators must include 'errors': hyperparameter selection "
                     f"reads its validation and forget errors (got {names}).")
  return [REGISTRY.get(n) for n in names]


def _discover() -> None:
  for module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{module.name}")


_discover()
