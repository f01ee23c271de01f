r"""Where a training step's time goes, op by op, from XLA:CPU's own per-op trace events.

    python -m benchmarks.step_profile --width=64 --members=16
    python -m benchmarks.step_profile --width=64 --strategy=vmap-scan-c2-blas --out=FILE.md

Trains one case of benchmarks/training.py (the MLP on MNIST-1D by default) for epoch-sized
calls of a scan strategy under the JAX profiler, with XLA:CPU's per-op trace events on
(`--xla_cpu_enable_xprof_traceme`) and the step program's optimised HLO dumped, then prints one
row per op of that program: its own time per call (nested ops' time taken out; member chunks
side by side summed, so the total is core time), executions per call, share of all the ops'
time, and what the op is: matrix products (a dot, or a fusion with one inside) with their
FLOP/s, everything else by kind. Rows are also written as JSON lines next to --out.

Tracing every op costs time itself: the table also gives the calls' time without the profiler.
XLA:CPU only; the strategy's names are those of benchmarks/training.py, including the '-blas' /
'-nodots' product variants (whose custom calls show up as ops too).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import math
import os
import re
import sys
import tempfile
import time
from typing import Optional

# blas_call.TARGET (imported there with JAX, which must start after XLA_FLAGS are set here).
BLAS_TARGET = "unlearn_jax_benchmarks_batched_sgemm"
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+) = (.+?) ([\w\-]+)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+) .*\{$")


@dataclasses.dataclass
class Op:
  """One HLO instruction of the profiled program."""
  name: str
  shape: str
  opcode: str
  flops: int = 0           # matrix-product FLOPs per execution (its own, or its fusion's dots)
  called: str = ""         # the computation a fusion / call runs

  @property
  def is_product(self) -> bool:
    return self.flops > 0

  @property
  def kind(self) -> str:
    if self.opcode == "fusion" and "ynn_fusion" in self.name:
      return "YNNPACK fusion"
    return self.opcode


def _dims(shape: str) -> list[int]:
  """[8, 128, 40] for 'f32[8,128,40]{2,1,0}' (the first array of a tuple)."""
  found = re.search(r"\[([\d,]*)\]", shape)
  return [int(d) for d in found.group(1).split(",") if d] if found else []


def parse_hlo(text: str) -> dict[str, Op]:
  """Every instruction of an HLO module's text by name, dots' and fusions' product FLOPs set."""
  computations: dict[str, dict[str, Op]] = {}
  current: dict[str, Op] = {}
  for line in text.splitlines():
    head = _COMPUTATION.match(line)   # instructions are indented, computations are not
    if head:
      current = computations.setdefault(head.group(1), {})
      continue
    found = _INSTRUCTION.match(line)
    if not found:
      continue
    name, shape, opcode, rest = found.groups()
    op = Op(name, shape, opcode)
    operands = re.findall(r"%([\w.\-]+)", rest)
    lhs = current.get(operands[0]) if operands else None
    if opcode == "dot":
      contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
      if lhs and contracting:
        contracted = math.prod(_dims(lhs.shape)[int(d)] for d in contracting.group(1).split(",")
                               if d)
        op.flops = 2 * math.prod(_dims(shape)) * contracted
    elif (opcode == "custom-call" and f'"{BLAS_TARGET}"' in rest and lhs
          and "compute = false" not in rest):
      # The '-blas' rows' products: op(lhs)[..., m, k] @ op(rhs)[..., k, n].
      contracted = _dims(lhs.shape)[-2 if "trans_a = true" in rest else -1]
      op.flops = 2 * math.prod(_dims(shape)) * contracted
    called = re.search(r"(?:calls|to_apply)=%([\w.\-]+)", rest)
    op.called = called.group(1) if called else ""
    current[name] = op
  ops: dict[str, Op] = {}
  for body in computations.values():
    for op in body.values():
      if op.opcode == "fusion" and op.called in computations:
        op.flops = sum(inner.flops for inner in computations[op.called].values())
      ops[op.name] = op
  return ops


def self_times(events: list[dict]) -> dict[str, list[float]]:
  """{name: [own microseconds of each complete event]}: an event's duration less that of the
  events nested in it on the same thread."""
  out: dict[str, list[float]] = collections.defaultdict(list)
  by_thread = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and "dur" in e:
      by_thread[(e.get("pid"), e.get("tid"))].append(e)
  for thread in by_thread.values():
    thread.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[list] = []   # [event, time of its children]
    def close(until: float):
      while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= until:
        event, children = stack.pop()
        out[event["name"]].append(event["dur"] - children)
        if stack:
          stack[-1][1] += event["dur"]
    for e in thread:
      close(e["ts"])
      stack.append([e, 0.0])
    close(float("inf"))
  return out


def profile_rows(ops: dict[str, Op], own: dict[str, list[float]], calls: int) -> list[dict]:
  """One row per op of the program that ran, largest own time first."""
  rows = []
  for name, times in own.items():
    op = ops.get(name)
    if op is None:
      continue
    seconds = sum(times) / 1e6 / calls
    executions = len(times) / calls
    rows.append({"op": name, "kind": op.kind, "shape": op.shape, "product": op.is_product,
                 "ms_per_call": seconds * 1e3, "executions_per_call": executions,
                 "flops_per_s": op.flops * executions / seconds if op.flops and seconds else None})
  total = sum(r["ms_per_call"] for r in rows) or 1.0
  for r in rows:
    r["share"] = r["ms_per_call"] / total
  return sorted(rows, key=lambda r: -r["ms_per_call"])


def markdown(rows: list[dict], head: str, peak: Optional[float]) -> str:
  lines = [head, "",
           "| op | kind | shape | ms per call | runs per call | share | FLOP/s | % peak |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    rate = r["flops_per_s"]
    lines.append(f"| {r['op']} | {r['kind']}{' (product)' if r['product'] else ''} | "
                 f"`{r['shape']}` | {r['ms_per_call']:.3f} | {r['executions_per_call']:.0f} | "
                 f"{r['share']:.1%} | {f'{rate / 1e9:.0f}G' if rate else '-'} | "
                 f"{f'{rate / peak:.0%}' if rate and peak else '-'} |")
  products = sum(r["ms_per_call"] for r in rows if r["product"])
  total = sum(r["ms_per_call"] for r in rows)
  lines += ["", f"Products: {products:.2f} ms per call ({products / max(total, 1e-12):.0%} of the "
                f"ops' time); everything else: {total - products:.2f} ms."]
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", default="mlp")
  parser.add_argument("--width", type=float, default=64)
  parser.add_argument("--members", type=int, default=16)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--strategy", default="vmap-scan-c2")
  parser.add_argument("--calls", type=int, default=20, help="profiled calls")
  parser.add_argument("--num-samples", type=int, help="fewer MNIST-1D examples (quick runs)")
  parser.add_argument("--out", help="markdown path (JSON lines next to it, .jsonl)")
  args = parser.parse_args(argv)
  if "jax" in sys.modules:
    raise RuntimeError("step_profile sets XLA_FLAGS, so it must run before JAX is imported.")
  dump = tempfile.mkdtemp(prefix="step_profile_")
  os.environ["XLA_FLAGS"] = " ".join([
      os.environ.get("XLA_FLAGS", ""), "--xla_cpu_enable_xprof_traceme=true",
      f"--xla_dump_to={dump}", "--xla_dump_hlo_as_text", "--xla_dump_hlo_module_re=scan_steps"])
  # pylint: disable=g-import-not-at-top
  import jax
  from benchmarks import machine, report, training
  from unlearn_jax import train
  # pylint: enable=g-import-not-at-top
  if jax.default_backend() != "cpu":
    raise ValueError(f"step_profile reads XLA:CPU's per-op events; this backend is "
                     f"{jax.default_backend()!r}.")
  jax.config.update("jax_enable_compilation_cache", False)   # a cache hit would dump nothing
  base, products = report.products_variant(args.strategy)
  strategy = training.parse_strategy(base, args.model, args.width)
  if strategy.steps != "scan":
    raise ValueError(f"step_profile profiles scan strategies (one program per chunk); "
                     f"got {args.strategy!r}.")
  s = training.setup(training.mnist1d(args.model, args.num_samples),
                     training.member_list(args.members, [args.width]), args.batch_size)
  driver = train.Driver(training.products_step(s, products), strategy)
  carry = jax.block_until_ready(driver(s.state, s.data, s.batches, s.keys)[0])

  def run(calls: int) -> float:
    nonlocal carry
    start = time.perf_counter()
    for _ in range(calls):
      carry = driver(carry, s.data, s.batches, s.keys)[0]
    jax.block_until_ready(carry)
    return (time.perf_counter() - start) / calls

  plain = run(args.calls)
  trace_dir = tempfile.mkdtemp(prefix="step_profile_trace_")
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  traced = run(args.calls)
  jax.profiler.stop_trace()
  with gzip.open(glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)[0]) as f:
    events = json.load(f)["traceEvents"]
  ops: dict[str, Op] = {}
  for path in glob.glob(f"{dump}/*scan_steps*after_optimizations.txt"):
    with open(path) as f:
      ops.update(parse_hlo(f.read()))
  rows = profile_rows(ops, self_times(events), args.calls)
  info = machine.describe()
  peak = info["peak_flops"]
  head = (f"# Op profile: {args.model} width {args.width:g}, {args.members} members, batch "
          f"{args.batch_size}, {args.strategy}, {s.steps} steps per call\n\n"
          f"{info['cpu_model']}, jax {jax.__version__}; {plain * 1e3:.2f} ms per call "
          f"unprofiled, {traced * 1e3:.2f} ms profiled; ms per call sum both member chunks "
          f"(core time); % peak of the {peak / 1e9:.0f} GFLOP/s 2048^2 XLA matmul per core "
          f"count ({os.cpu_count()}).")
  text = markdown(rows, head, peak / (os.cpu_count() or 1))
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
    with open(os.path.splitext(args.out)[0] + ".jsonl", "w") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
