"""What every stage of one run reads: the config, the workdir layout, the data and its
fingerprint, the evaluators and the region probe. Built once per run, before any training."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp

from experiments import evaluators as evaluators_lib
from experiments import setup
from experiments.layout import Layout
from experiments.stages.regions import RegionProbe
from unlearn_jax import data as data_lib


@dataclasses.dataclass
class RunContext:
  config: Any
  layout: Layout
  splits: Any
  scenario: Any
  data: dict          # the training split on device: every member indexes into it
  sample_x: Any
  fingerprint: str    # content hash of every split: caches are keyed by the data, not its path
  evaluators: list
  probe: RegionProbe
  writer: bool        # process 0 of a multi-process run writes files
  diverged: list = dataclasses.field(default_factory=list)   # (stage, bucket, members) lines

  def note_diverged(self, what: str, tag: str, models, only=None) -> None:
    """Logs and remembers diverged members (the report lists them): all of `models.diverged`,
    or the members flagged in `only`."""
    flags = models.diverged if only is None else only
    bad = [models.members[i] for i in range(len(models.members)) if flags[i]]
    if bad:
      logging.warning("%s widths %s: %d member(s) diverged (non-finite parameters or outputs), "
                      "e.g. %s; every metric of theirs is NaN, tuning never selects them and "
                      "aggregates skip them.", what, tag, len(bad), bad[0])
      self.diverged.append({"stage": what, "widths": tag, "members": bad})


def build(config, layout: Layout) -> RunContext:
  splits, scenario = setup.load_splits(config)
  setup.check_sizes(config, splits)
  return RunContext(
      config=config, layout=layout, splits=splits, scenario=scenario,
      data={"x": jnp.asarray(splits.x_train), "y": jnp.asarray(splits.y_train)},
      sample_x=jnp.asarray(splits.x_train[:2]), fingerprint=data_lib.fingerprint(splits),
      evaluators=evaluators_lib.from_config(config),
      probe=RegionProbe(splits, config.regions, seed=config.dataset.split_seed),
      writer=jax.process_index() == 0)
