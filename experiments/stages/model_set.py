"""A member-stacked set of models of one width bucket: what every stage after training consumes."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from unlearn_jax import train as train_lib


@dataclasses.dataclass
class ModelSet:
  """name: 'original', 'retrained' or the unlearning method. members: {'seed', 'width',
  'hparams'} per member. origin: index of each member's original (and of its retrained
  reference) in the bucket. identity: what determines these models; caches of anything derived
  from them are keyed by it. diverged: (S,) bool, members with non-finite parameters."""
  name: str
  widths: tuple
  members: list[dict]
  model: Any
  variables: train_lib.Variables
  strategy: train_lib.Strategy
  origin: np.ndarray
  identity: dict
  seconds: float

  def __post_init__(self):
    bad = train_lib.diverged_members(self.variables.params)
    self.diverged = np.zeros(len(self.members), bool)
    self.diverged[np.asarray(bad, int)] = True

  @property
  def member_widths(self) -> np.ndarray:
    return np.asarray([m["width"] for m in self.members])

  def take(self, idx) -> train_lib.Variables:
    return train_lib.take_members(self.variables, np.asarray(idx))

  def subset(self, idx, name: str) -> "ModelSet":
    """Members `idx` as a set of their own (e.g. the selected grid points)."""
    idx = np.asarray(idx, int)
    return ModelSet(name, self.widths, [self.members[i] for i in idx], self.model,
                    self.take(idx), self.strategy, self.origin[idx], self.identity, self.seconds)
