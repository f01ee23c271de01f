"""Orbax checkpoints of member-stacked states plus JSON metadata.

One `StageCheckpointer` per stage directory (e.g. `workdir/originals/bucket_0`). A checkpoint
holds the state pytree and a JSON dict (config, member table, epoch); restore goes into an
abstract tree from `jax.eval_shape`, so shapes, dtypes and shardings come from code, not disk.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from unlearn_jax.train import sharding

PyTree = Any

# Orbax's asynchronous saves coordinate through process-wide operation ids: two managers saving
# at once from two threads (stages side by side, experiments/stage_pool.py) time out waiting for
# each other's signals. So one operation at a time, and a save is finished before the next starts.
_ORBAX = threading.RLock()


class NoUsableCheckpoint(FileNotFoundError):
  """Every step of a stage was damaged (and has been removed): the stage starts afresh."""


class StageCheckpointer:
  """Save/restore the latest states of one stage."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    with _ORBAX:
      self._manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    with _ORBAX:
      return self._manager.latest_step()

  def save(self, step: int, state: PyTree, meta: dict) -> None:
    with _ORBAX:
      saved = self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_global(state)), meta=ocp.args.JsonSave(meta)))
      self._manager.wait_until_finished()
    if not saved:   # Orbax skips a step that exists; keeping the old one would go unnoticed
      raise RuntimeError(f"checkpoint step {step} was not written to {self.directory} (it "
                         "exists already); delete that directory to redo the stage.")

  def read_meta(self, step: int | None = None) -> dict:
    """The JSON metadata alone, e.g. to check a checkpoint matches before restoring arrays.

    Without `step`: the newest step whose checkpoint is readable (see `restore`)."""
    if step is not None:
      return self._read_meta(step)
    return self._newest_readable(self._read_meta)[1]

  def _read_meta(self, step: int) -> dict:
    with _ORBAX:
      return self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]

  def _newest_readable(self, read) -> tuple[int, Any]:
    """(step, read(step)) of the newest step that reads without error.

    A damaged step (truncated or deleted files) is reported with its path and removed, so the
    run resumes from the previous complete step and can write that step again; if none is left,
    `NoUsableCheckpoint` is raised and the stage starts afresh.
    """
    with _ORBAX:
      steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}.")
    for step in steps:
      try:
        return step, read(step)
      except Exception as e:  # pylint: disable=broad-except  (any damage: truncated, deleted)
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        logging.error("checkpoint %s is damaged (%s); removing it and using an earlier step if "
                      "there is one.", os.path.join(self.directory, str(step)), reason)
        with _ORBAX:
          self._manager.delete(step)
    raise NoUsableCheckpoint(f"every checkpoint in {self.directory} was damaged (removed); the "
                             "stage starts afresh.")

  def restore(self, abstract_state: PyTree, step: int | None = None) -> tuple[PyTree, dict]:
    """State and metadata of `step`, or of the newest readable step."""
    if step is None:
      return self._newest_readable(lambda s: self._restore(abstract_state, s))[1]
    return self._restore(abstract_state, step)

  def _restore(self, abstract_state: PyTree, step: int) -> tuple[PyTree, dict]:
    multi = jax.process_count() > 1
    if multi:
      replicated = NamedSharding(sharding.member_mesh(), P())
      abstract_state = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract_state)
    with _ORBAX:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    state = out["state"]
    if multi:  # every process continues with its own full copy
      state = jax.tree.map(lambda x: x.addressable_data(0), state)
    return state, out["meta"]

  def wait(self) -> None:
    with _ORBAX:
      self._manager.wait_until_finished()

  def close(self) -> None:
    with _ORBAX:
      self._manager.wait_until_finished()
      self._manager.close()


def _global(state: PyTree) -> PyTree:
  """In a multi-process run, host-local arrays become replicated global arrays for saving."""
  if jax.process_count() == 1:
    return state
  mesh = sharding.member_mesh()
  return jax.tree.map(lambda x: sharding.replicate(x, mesh) if x.is_fully_addressable else x,
                      state)

