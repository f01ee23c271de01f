r"""Where a run's compilation goes: programs, lowering and XLA compile seconds per program name
and the project line that asked for it.

  python -m benchmarks.compile_profile --out=/tmp/compile.txt -- \
      --config=configs/mnist1d_mlp.py:all_widths,seeds=3,shadows=0 --workdir=/tmp/w \
      --config.compilation_cache_dir=/tmp/empty_cache

Everything after `--` goes to `experiments.width_sweep`. With an empty (or no) compilation cache
the compile column is XLA's work; with a warm cache it is the time to read programs back. The
table in benchmarks/results/cpu-xeon-default-sweep.md came from this. It wraps two internal JAX
functions (`pxla.lower_sharding_computation`, `compiler.compile_or_get_cached`), so a JAX
upgrade may need it adjusted; nothing else in the project depends on it.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import runpy
import sys
import threading
import time
import traceback

from jax._src import compiler
from jax._src.interpreters import pxla

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIPPED = (__file__, os.path.join(_ROOT, "unlearn_jax", "compile_cache.py"),
            os.path.join(_ROOT, "unlearn_jax", "host_constants.py"))


@dataclasses.dataclass
class Entry:
  programs: int = 0
  lower_s: float = 0.0
  compile_s: float = 0.0


class CompileProfile:
  """Counts lowerings and compilations by (program name, first project frame on the stack)."""

  def __init__(self):
    self.entries: dict[tuple[str, str], Entry] = collections.defaultdict(Entry)
    self._current = threading.local()

  @contextlib.contextmanager
  def installed(self):
    lower, compile_ = pxla.lower_sharding_computation, compiler.compile_or_get_cached

    def timed_lower(closed_jaxpr, api_name, fun_name, *args, **kwargs):
      start = time.perf_counter()
      out = lower(closed_jaxpr, api_name, fun_name, *args, **kwargs)
      key = (fun_name, _caller())
      self._current.key = key
      self.entries[key].programs += 1
      self.entries[key].lower_s += time.perf_counter() - start
      return out

    def timed_compile(*args, **kwargs):
      start = time.perf_counter()
      out = compile_(*args, **kwargs)
      self.entries[getattr(self._current, "key", ("?", "?"))].compile_s += (
          time.perf_counter() - start)
      return out

    pxla.lower_sharding_computation, compiler.compile_or_get_cached = timed_lower, timed_compile
    try:
      yield self
    finally:
      pxla.lower_sharding_computation, compiler.compile_or_get_cached = lower, compile_

  def table(self) -> str:
    rows = sorted(self.entries.items(), key=lambda kv: -(kv[1].lower_s + kv[1].compile_s))
    total = Entry(sum(e.programs for _, e in rows), sum(e.lower_s for _, e in rows),
                  sum(e.compile_s for _, e in rows))
    lines = [f"{total.programs} programs, lowering {total.lower_s:.1f} s, compile "
             f"{total.compile_s:.1f} s", "",
             "| programs | lowering s | compile s | program | asked for at |", "|---:|---:|---:|---|---|"]
    lines += [f"| {e.programs} | {e.lower_s:.2f} | {e.compile_s:.2f} | {name} | {where} |"
              for (name, where), e in rows]
    return "\n".join(lines) + "\n"


def _caller() -> str:
  """The innermost stack frame in this project outside this file and the project's jit wrapper,
  as 'path:line function' (installed packages do not count, even in a virtual environment
  inside the project)."""
  for frame in reversed(traceback.extract_stack()):
    installed = any(f"{os.sep}{d}{os.sep}" in frame.filename
                    for d in ("site-packages", "dist-packages"))
    if (frame.filename.startswith(_ROOT) and frame.filename not in _SKIPPED
        and not installed):
      return f"{os.path.relpath(frame.filename, _ROOT)}:{frame.lineno} {frame.name}"
  return "?"


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  split = argv.index("--") if "--" in argv else len(argv)
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default=None, help="write the table here (default: stdout)")
  args = parser.parse_args(argv[:split])
  profile = CompileProfile()
  sys.argv = ["experiments.width_sweep"] + argv[split + 1:]
  with profile.installed():
    try:
      runpy.run_module("experiments.width_sweep", run_name="__main__")
    except SystemExit as e:   # absl's app.run exits when main returns
      if e.code not in (None, 0):
        raise
  text = profile.table()
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  else:
    print(text)


if __name__ == "__main__":
  main()
