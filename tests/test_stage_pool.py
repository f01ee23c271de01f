"""Stages side by side: ordering, diverged-member notes, failures, and the automatic count."""
import dataclasses
import threading
import time

import ml_collections
import pytest

from experiments import stage_pool


@dataclasses.dataclass
class _Ctx:
  diverged: list = dataclasses.field(default_factory=list)

  def note(self, what):
    self.diverged.append(what)


def test_tasks_run_side_by_side_and_come_back_in_submission_order():
  first_waits = threading.Event()

  def task(ctx, i):
    if i == 0:   # finishes only if task 1 runs at the same time
      assert first_waits.wait(timeout=10), "task 1 never ran next to task 0"
    else:
      first_waits.set()
    ctx.note(f"task {i}")
    return i * 10

  ctx = _Ctx()
  with stage_pool.StagePool(2) as pool:
    tasks = [pool.submit(task, ctx, i) for i in range(4)]
    assert [t.result() for t in tasks] == [0, 10, 20, 30]
  assert ctx.diverged == ["task 0", "task 1", "task 2", "task 3"]


def test_notes_merge_in_submission_order_whatever_finishes_first():
  def task(ctx, i):
    time.sleep(0.3 if i == 0 else 0.0)   # task 0 finishes last
    ctx.note(i)

  ctx = _Ctx(["before"])
  with stage_pool.StagePool(2) as pool:
    tasks = [pool.submit(task, ctx, i) for i in range(3)]
    for t in tasks:
      t.result()
      t.result()   # a second call returns the value again without noting twice
  assert ctx.diverged == ["before", 0, 1, 2]


def test_a_failure_waits_for_running_tasks_and_drops_queued_ones():
  ran, running_finished = [], threading.Event()

  def task(ctx, i):
    del ctx
    ran.append(i)
    if i == 0:
      raise RuntimeError("stage 0 failed")
    if i == 1:
      time.sleep(0.3)
      running_finished.set()
    else:
      time.sleep(0.05)

  with pytest.raises(RuntimeError, match="stage 0 failed"):
    with stage_pool.StagePool(2) as pool:
      for t in [pool.submit(task, _Ctx(), i) for i in range(40)]:
        t.result()
  assert running_finished.is_set()   # the running task ended before the error came out
  assert len(ran) < 40


def test_one_worker_runs_tasks_in_the_calling_thread_and_fails_at_once():
  ctx, calls = _Ctx(), []
  pool = stage_pool.StagePool(1)
  task = pool.submit(lambda c, x: calls.append(threading.get_ident()) or x + 1, ctx, 1)
  assert calls == [threading.get_ident()]
  assert task.result() == 2

  def fail(c):
    raise ValueError("bad stage")

  with pytest.raises(ValueError, match="bad stage"):
    pool.submit(fail, ctx)


@pytest.mark.parametrize("devices, cores, expected", [(1, 2, 2), (1, 16, 2), (1, 1, 1), (4, 2, 1)])
def test_automatic_worker_count(monkeypatch, devices, cores, expected):
  # One CPU device: up to 2 (measured on 2 cores); several devices already share each stage.
  monkeypatch.setattr(stage_pool.jax, "device_count", lambda: devices)
  monkeypatch.setattr(stage_pool.os, "cpu_count", lambda: cores)
  config = ml_collections.ConfigDict({"stage_workers": 0})
  assert stage_pool.resolve_workers(config) == expected
  config.stage_workers = 3
  assert stage_pool.resolve_workers(config) == 3
