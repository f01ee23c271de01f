"""One run per workdir: an exclusive OS file lock, released by the kernel when the process ends
(also on SIGKILL), so a stale lock can never block a later run.

In a multi-process run only process 0 takes it (every process shares the workdir).
"""
from __future__ import annotations

import contextlib
import fcntl
import os


class WorkdirBusyError(RuntimeError):
  pass


@contextlib.contextmanager
def hold(path: str, take: bool = True):
  """Holds the lock at `path` for the duration of the block; fails at once if it is taken."""
  if not take:
    yield
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "another process"
      raise WorkdirBusyError(
          f"{os.path.dirname(path)} is in use by another run ({holder}); wait for it to finish "
          "or pass another --workdir.") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
