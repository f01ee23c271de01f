"""Orbax checkpoints of member-stacked states plus JSON metadata.

One `StageCheckpointer` per stage directory (e.g. `workdir/originals/bucket_0`). A checkpoint
holds the state pytree and a JSON dict (config, member table, epoch); restore goes into an
abstract tree from `jax.eval_shape`, so shapes, dtypes and shardings come from code, not disk.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from unlearn_jax.train import sharding

PyTree = Any


class StageCheckpointer:
  """Save/restore the latest states of one stage."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: PyTree, meta: dict) -> None:
    saved = self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_global(state)), meta=ocp.args.JsonSave(meta)))
    if not saved:   # Orbax skips a step that exists; keeping the old one would go unnoticed
      raise RuntimeError(f"checkpoint step {step} was not written to {self.directory} (it "
                         "exists already); delete that directory to redo the stage.")

  def read_meta(self, step: int | None = None) -> dict:
    """The JSON metadata alone, e.g. to check a checkpoint matches before restoring arrays."""
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, abstract_state: PyTree, step: int | None = None) -> tuple[PyTree, dict]:
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}.")
    multi = jax.process_count() > 1
    if multi:
      replicated = NamedSharding(sharding.member_mesh(), P())
      abstract_state = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract_state)
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    state = out["state"]
    if multi:  # every process continues with its own full copy
      state = jax.tree.map(lambda x: x.addressable_data(0), state)
    return state, out["meta"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _global(state: PyTree) -> PyTree:
  """In a multi-process run, host-local arrays become replicated global arrays for saving."""
  if jax.process_count() == 1:
    return state
  mesh = sharding.member_mesh()
  return jax.tree.map(lambda x: sharding.replicate(x, mesh) if x.is_fully_addressable else x,
                      state)

