r"""XLA:CPU compile options against the default: compile seconds of one epoch's training-step
program, its run time, and whether it trains bitwise the default's models.

  python -m benchmarks.compile_options --widths=8,64,256 --members=3 [--rounds=2] \
      [--dataset=mnist1d|synthetic] [--run_calls=20] [--sets=JSON] [--out=FILE.md]

Each option set compiles the MLP's epoch scan (`train.Driver`, one vmap over `--members` seeds of
one width) in a fresh process, so no compiler state carries over, and runs it once; then one more
process compiles every set and times `--run_calls` epochs of each, the sets in turn. The data:
MNIST-1D (batch 128), or the tests' synthetic set (160 examples of length 12, 4 classes, batch
32). A sweep compiles hundreds of programs, so an option that shortens compilation without
moving a bit would shorten every cold run; one that moves a bit would move committed results.
Option sets are XLA debug options as `jax.jit(compiler_options=...)` takes them, on top of
XLA's own default ("default"; the project's `compile_cache.CPU_OPTIONS`, the older loop emitters,
are not applied here); `--sets` replaces the built-in ones with a JSON {name: options} (the
default is always measured too), and `--reference=NAME` compares bits with that set instead of
the default.
Compile times on a shared machine vary by tens of percent: compare rounds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

# load kwargs and batch size per --dataset
DATASETS = {"mnist1d": ({}, 128),
            "synthetic": ({"num_train": 160, "num_test": 40, "length": 12}, 32)}
DEFAULT_SETS = {
    "default": {},
    "older loop emitters": {"xla_cpu_use_fusion_emitters": False},
    "older loop emitters, level 1": {"xla_cpu_use_fusion_emitters": False,
                                     "xla_backend_optimization_level": 1},
    "level 1": {"xla_backend_optimization_level": 1},
    "no expensive LLVM passes": {"xla_llvm_disable_expensive_passes": True},
}


def _epoch_program(width: int, members: int, dataset: str):
  """The MLP's lowered epoch scan over `members` seeds of one width, and its arguments."""
  import jax.numpy as jnp
  import numpy as np

  from unlearn_jax import compile_cache
  from unlearn_jax import data as data_lib
  from unlearn_jax import train
  from unlearn_jax.train import batches

  compile_cache.CPU_OPTIONS.clear()   # "default" is XLA's own; the project's is a set here
  load_kwargs, batch_size = DATASETS[dataset]
  ds = data_lib.load(dataset, **load_kwargs)
  d = {"x": jnp.asarray(ds.x_train, jnp.float32), "y": jnp.asarray(ds.y_train, jnp.int32)}
  pool = np.arange(len(ds.y_train), dtype=np.int32)
  grid = train.member_grid(list(range(members)), [width], [0.1], [1e-3])
  factory = train.make_optimizer("sgd", "constant", 10)
  model, state, _ = train.init_members("mlp", grid, ds.num_classes, d["x"][:2], factory)
  step = train.make_train_step(model, train.any_optimizer(factory), False)
  keys = train.member_keys(grid, 0)
  inputs = batches.member_batches(keys, pool, batch_size, len(pool) // batch_size)
  args = (state, d, inputs, keys)
  return train.Driver(step, train.Strategy(0, "scan"))._fn.lower(*args), args


def measure(width: int, members: int, options: dict, dataset: str = "mnist1d") -> dict:
  """Compile seconds and a digest of the trained state for one option set (in this process)."""
  import jax
  import numpy as np

  lowered, args = _epoch_program(width, members, dataset)
  jax.jit(lambda x: x * 2.0 + 1.0)(1.0)   # the compiler's own start-up is not the program's
  start = time.perf_counter()
  compiled = lowered.compile(compiler_options=options)
  compile_s = time.perf_counter() - start
  out = jax.block_until_ready(compiled(*args))
  digest = hashlib.sha1(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(out)))
  return {"compile_s": compile_s, "digest": digest.hexdigest()[:12]}


def run_times(width: int, members: int, sets: dict, dataset: str, calls: int) -> dict:
  """Median ms of one epoch per option set: all compiled in this process, then called in turn
  (the order reversed every round) so that the machine's drift hits every set alike. An option
  that compiles faster may emit slower code."""
  import jax
  import numpy as np

  lowered, args = _epoch_program(width, members, dataset)
  compiled = {}
  for name, options in sets.items():
    try:
      compiled[name] = lowered.compile(compiler_options=options)
      jax.block_until_ready(compiled[name](*args))
    except Exception:  # pylint: disable=broad-except  # reported by the compile rounds
      compiled.pop(name, None)
  seconds = {name: [] for name in compiled}
  for r in range(calls):
    for name in (list(compiled) if r % 2 == 0 else list(compiled)[::-1]):
      start = time.perf_counter()
      jax.block_until_ready(compiled[name](*args))
      seconds[name].append(time.perf_counter() - start)
  return {name: 1e3 * float(np.median(s)) for name, s in seconds.items()}


def run_in_subprocess(width: int, members: int, options: dict, dataset: str,
                      run_calls: int = 0, sets: dict | None = None) -> dict:
  """`measure` in a fresh process; with `run_calls`, `run_times` of `sets` instead."""
  cmd = [sys.executable, "-m", "benchmarks.compile_options", "--child",
         json.dumps({"width": width, "members": members, "options": options,
                     "dataset": dataset, "run_calls": run_calls, "sets": sets})]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode or not lines:
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": last.split(": ", 1)[-1]}   # without the exception's class
  return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
  lines = ["| width | option set | compile s (rounds) | epoch ms | bitwise the reference's |",
           "|---:|---|---|---:|---|"]
  for r in rows:
    lines.append(f"| {r['width']} | {r['name']} | {r['compile']} | {r['run']} | {r['bitwise']} |")
  return "\n".join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--widths", default="8,64,256")
  p.add_argument("--members", type=int, default=3)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--run_calls", type=int, default=20,
                 help="epochs per set timed in one process, the sets in turn (0: none)")
  p.add_argument("--dataset", default="mnist1d", choices=sorted(DATASETS))
  p.add_argument("--sets", default="", help="JSON {name: options} replacing the default sets")
  p.add_argument("--reference", default="default", help="the set whose bits the others must match")
  p.add_argument("--out", default="")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    spec = json.loads(args.child)
    if spec["run_calls"]:
      print(json.dumps(run_times(spec["width"], spec["members"], spec["sets"], spec["dataset"],
                                 spec["run_calls"])))
    else:
      print(json.dumps(measure(spec["width"], spec["members"], spec["options"], spec["dataset"])))
    return
  sets = json.loads(args.sets) if args.sets else DEFAULT_SETS
  if "default" not in sets:
    sets = {"default": {}, **sets}
  if args.reference not in sets:
    p.error(f"--reference={args.reference!r} is not one of the sets {sorted(sets)}")
  rows = []
  for width in [int(w) for w in args.widths.split(",")]:
    results = {name: [] for name in sets}
    for _ in range(args.rounds):   # interleaved, so drift of the machine hits every set alike
      for name, options in sets.items():
        results[name].append(run_in_subprocess(width, args.members, options, args.dataset))
    run_ms = (run_in_subprocess(width, args.members, {}, args.dataset, args.run_calls, sets)
              if args.run_calls else {})
    reference = results[args.reference][0].get("digest")
    for name, runs in results.items():
      errors = [r["error"] for r in runs if "error" in r]
      ok = [r for r in runs if "error" not in r]
      rows.append({
          "width": width, "name": name,
          "compile": (" / ".join(f"{r['compile_s']:.2f}" for r in ok) if ok
                      else f"error: {errors[0][:100]}"),
          "run": f"{run_ms[name]:.1f}" if name in run_ms else "-",
          "bitwise": ("-" if not ok else
                      "yes" if all(r["digest"] == reference for r in ok) else "**no**")})
      print(json.dumps(rows[-1]), flush=True)
  text = (f"{args.members} members, one {args.dataset} epoch (batch {DATASETS[args.dataset][1]}), "
          f"each compile in a fresh process, {args.rounds} interleaved rounds; epoch ms the "
          f"median of {args.run_calls} runs per set in one process, the sets in turn; bits "
          f"against {args.reference!r}\n\n{table(rows)}\n")
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)


if __name__ == "__main__":
  main()
