"""Independent stages side by side: a sweep's stages in a few worker threads.

XLA:CPU runs one program's steps on about one core, even with several cores free: two training
programs of the MNIST-1D MLP run in two threads finish 1.4-2x sooner than one after the other
on 2 cores (benchmarks/results/cpu-xeon-default-sweep.md), with bitwise the same results. So
the stages that do not depend on each other (originals and retrained references, every method
of a bucket, the shadow models' pairs) run in `config.stage_workers` threads.

Results do not depend on the number of workers: every stage computes the same programs on the
same inputs, rows are collected in submission order, and each task notes its diverged members in
a context of its own that is merged in that order. A task that fails lets the running ones finish
(they may be writing a checkpoint) and cancels the rest before the error is raised.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Any, Callable

import jax


def resolve_workers(config) -> int:
  """config.stage_workers, with 0 (auto) meaning: on one CPU device of a single-process run, as
  many as there are cores up to 2; else 1 (an accelerator is busy with one program, and the
  processes of a multi-process run must dispatch the same programs in the same order)."""
  requested = int(config.get("stage_workers", 0))   # checked in experiments/config_checks.py
  if requested:
    return requested
  single_cpu = (jax.default_backend() == "cpu" and jax.device_count() == 1
                and jax.process_count() == 1)
  return min(2, os.cpu_count() or 1) if single_cpu else 1


class StagePool:
  """`submit(fn, ctx, *args)` runs `fn(task_ctx, *args)` in a worker and returns a `Task`.

  With one worker a task runs at once in the calling thread (no threads at all; an error is
  raised at once). Use as a context manager: leaving it waits for every running task.
  """

  def __init__(self, workers: int):
    self._pool = (concurrent.futures.ThreadPoolExecutor(workers, "stage")
                  if workers > 1 else None)

  def submit(self, fn: Callable[..., Any], ctx, *args, **kwargs) -> "Task":
    # A context of its own: its diverged-member notes join the run's in collection order.
    task_ctx = dataclasses.replace(ctx, diverged=[])
    if self._pool is None:
      return Task(ctx, task_ctx, value=fn(task_ctx, *args, **kwargs))
    return Task(ctx, task_ctx, future=self._pool.submit(fn, task_ctx, *args, **kwargs))

  def __enter__(self) -> "StagePool":
    return self

  def __exit__(self, exc_type, *_) -> None:
    if self._pool is not None:
      # On an error, queued stages are dropped; running ones finish (they may be mid-write).
      self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)


class Task:
  """A submitted stage; `result()` returns its value once and merges its diverged notes."""

  def __init__(self, ctx, task_ctx, value=None, future=None):
    self._ctx, self._task_ctx = ctx, task_ctx
    self._value, self._future = value, future
    self._merged = False

  def result(self):
    if self._future is not None:
      self._value = self._future.result()   # raises the task's error
    if not self._merged:
      self._ctx.diverged.extend(self._task_ctx.diverged)
      self._merged = True
    return self._value
