r"""Runs the benchmarks and writes JSON plus a markdown table.

    python -m benchmarks.run                          # full run on the default backend
    python -m benchmarks.run --quick                  # tiniest sizes: checks the machinery
    python -m benchmarks.run --only=train,padding --out=benchmarks/results/mine.json
    python -m benchmarks.run --only=sweep             # the default sweep end to end (full only)
    python -m benchmarks.run --only=train --compute-dtypes=float32,bfloat16
    python -m benchmarks.run --table-only a.json [b.json] [--update-readme]

Benchmarks (`--only`, comma separated; default: all but sweep): train, unlearn, padding,
regions, sweep. Sizes come from `plan()`: one set for CPU, one for accelerators, one for
--quick; --models/--widths/--members/--strategies/--batch-size/--steps override the training
cases (benchmarks/gpu_check.sh uses them), and --compute-dtypes runs every training case at each
listed activation dtype (default float32 only; rows record it as `compute_dtype`, and the
markdown gains a dtype column and a bfloat16-vs-float32 table when there are several). The
output defaults to benchmarks/results/<machine>[-quick].json, with the markdown next to it (.md);
both are rewritten after every case, so a run stopped early keeps what it measured
(`"complete": false` in the JSON until the end).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from typing import Callable, Optional, Sequence

from benchmarks import report

BENCHMARKS = ("train", "unlearn", "padding", "regions", "sweep")
COMPUTE_DTYPES = ("float32", "bfloat16")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def plan(quick: bool, backend: str) -> dict:
  """Cases per benchmark: keyword arguments of the benchmark functions (workloads by name)."""
  from benchmarks.training import mnist1d, synthetic_images  # pylint: disable=g-import-not-at-top
  if quick:
    tiny = mnist1d("mlp", num_samples=400)   # 320 training examples: 5 steps of 64
    return {
        "timing": dict(min_repeats=3, max_repeats=3, min_time_s=0.0),
        "train": [
            dict(workload=tiny, widths=[8], members=4, batch_size=64,
                 strategies=["vmap-scan", "loop-scan", "chunk2-host"]),
            dict(workload=mnist1d("cnn", num_samples=400), widths=[2], members=2,
                 batch_size=64, strategies=["loop-host"]),
            dict(workload=synthetic_images(8, 64), widths=[1], members=2, batch_size=32,
                 strategies=["loop-host"]),
        ],
        "padding": [dict(workload=tiny, widths=[4, 8], seeds=2, batch_size=64,
                         strategy_spec="vmap-scan")],
        "unlearn": [dict(workload=tiny, width=8, seeds=2, method_name="neggrad_plus",
                         strategies=["vmap-scan", "loop-scan"], values_per_name=2,
                         forget_size=32, batch_size=64, epochs=1)],
        "regions": [dict(workload=tiny, width=8, members=2, planes=2, resolution=8,
                         batch_size=64)],
    }
  cpu = backend == "cpu"
  # XLA:CPU runs convolutions ~20x slower inside lax.scan and ~6x slower vmapped (DESIGN.md), so
  # on CPU the convolutional cases compare host loops; on accelerators everything scans.
  conv = (["vmap-scan", "vmap-host", "loop-scan", "loop-host", "chunk4-host"] if cpu else
          ["vmap-scan", "loop-scan", "chunk4-scan", "vmap-host"])
  resnet = (["vmap-host", "loop-host", "chunk2-host"] if cpu else
            ["vmap-scan", "loop-scan", "chunk2-scan", "vmap-host"])
  steps = 4 if cpu else 8
  return {
      "timing": dict(min_repeats=2, max_repeats=10, min_time_s=1.0),
      "train": [
          dict(workload=mnist1d("mlp"), widths=[16, 128, 1024], members=8, batch_size=128,
               strategies=["vmap-scan", "loop-scan", "chunk4-scan", "vmap-host"]
               + (["vmap-scan-c2"] if cpu else [])),
          dict(workload=mnist1d("cnn"), widths=[4, 16, 64], members=8, batch_size=128,
               strategies=conv),
          dict(workload=synthetic_images(32, 128 * steps),
               widths=[2, 4, 8] if cpu else [8, 16, 32, 64], members=4, batch_size=128,
               strategies=resnet),
      ],
      "padding": [
          dict(workload=mnist1d("mlp"), widths=[32, 64, 128, 256], seeds=2, batch_size=128,
               strategy_spec="vmap-scan"),
          dict(workload=mnist1d("cnn"), widths=[4, 8, 16], seeds=2, batch_size=128,
               strategy_spec="vmap-host" if cpu else "vmap-scan"),
      ],
      "unlearn": [
          dict(workload=mnist1d("mlp"), width=128, seeds=3, method_name="neggrad_plus",
               strategies=["vmap-scan", "loop-scan"], values_per_name=None, forget_size=200,
               batch_size=128, epochs=1),
          dict(workload=mnist1d("cnn"), width=16, seeds=3, method_name="neggrad_plus",
               strategies=["vmap-host", "loop-host"] if cpu else ["vmap-scan", "loop-scan"],
               values_per_name=None, forget_size=200, batch_size=128, epochs=1),
      ],
      "regions": [
          dict(workload=mnist1d("mlp"), width=256, members=8, planes=16, resolution=64,
               batch_size=1024),
          dict(workload=mnist1d("cnn"), width=16, members=8, planes=8, resolution=32,
               batch_size=1024),
      ],
  }


def apply_overrides(cases: list[dict], args) -> list[dict]:
  """Command-line overrides of the training cases (e.g. gpu_check.sh's ResNet-only run)."""
  from benchmarks.training import synthetic_images  # pylint: disable=g-import-not-at-top
  out = []
  for case in cases:
    case = dict(case)
    if args.models and case["workload"].model not in args.models:
      continue
    if args.widths:
      case["widths"] = args.widths
    if args.members:
      case["members"] = args.members
    if args.strategies:
      case["strategies"] = args.strategies
    if args.batch_size:
      case["batch_size"] = args.batch_size
    if case["workload"].dataset == "synthetic" and (args.steps or args.batch_size):
      kwargs = dict(case["workload"].data_kwargs)
      steps = args.steps or kwargs["num_train"] // case["batch_size"]
      case["workload"] = synthetic_images(kwargs["image_size"], steps * case["batch_size"])
    out.append(case)
  return out


def reference_peak(info: dict, compute_dtype: str) -> Optional[float]:
  """The peak FLOP/s a case's achieved FLOP/s is compared with.

  float32 cases (and every case on CPU, where bfloat16 is emulated in float32 arithmetic, or
  with --peak-flops) use the machine's reference peak; bfloat16 cases on an accelerator use its
  dense bf16 datasheet peak when the table has one.
  """
  if (compute_dtype == "bfloat16" and info["backend"] != "cpu"
      and "--peak-flops" not in info.get("peak_assumption", "")
      and info.get("peaks", {}).get("bf16")):
    return info["peaks"]["bf16"]
  return info["peak_flops"]


def train_jobs(cases: list[dict], compute_dtypes: Sequence[str]) -> list[dict]:
  """One job per (case, width, compute dtype): rows come out in the same order as one job per
  case would give them, and a run stopped early keeps every finished width."""
  return [dict(case, widths=[width], compute_dtype=dtype)
          for case in cases for width in case["widths"] for dtype in compute_dtypes]


def run_benchmarks(args, checkpoint: Optional[Callable[[dict], None]] = None) -> dict:
  """Runs the selected benchmarks; `checkpoint(doc)` is called after every case."""
  # Imported here, not at the top, so that --table-only needs no JAX.
  # pylint: disable=g-import-not-at-top
  import jax
  from benchmarks import machine, regions, sweep, training, unlearning
  # pylint: enable=g-import-not-at-top

  info = machine.describe(args.peak_flops)
  peak = info["peak_flops"]
  p = plan(args.quick, info["backend"])
  kw = dict(timing_kw=p["timing"])
  flop_kw = dict(peak=peak)
  compute_dtypes = getattr(args, "compute_dtypes", None) or ["float32"]
  jobs = []   # (benchmark, description, thunk)
  if "sweep" in args.only:
    if args.quick:
      jobs.append(("sweep", "skip", "the end-to-end sweep runs in full mode only"))
    else:
      jobs.append(("sweep", args.sweep_config, lambda: sweep.run(args.sweep_config)))
  if "train" in args.only:
    for case in train_jobs(apply_overrides(p["train"], args), compute_dtypes):
      case_peak = reference_peak(info, case["compute_dtype"])
      jobs.append(("train", case, lambda c=case, pk=case_peak: training.throughput(
          **c, **kw, peak=pk)))
  if "padding" in args.only:
    for case in p["padding"]:
      jobs.append(("padding", case, lambda c=case: training.padding_cost(**c, **kw, **flop_kw)))
  if "unlearn" in args.only:
    _, why = unlearning.methods_module()
    if why:
      jobs.append(("unlearn", "skip", why))
    for case in ([] if why else p["unlearn"]):
      jobs.append(("unlearn", case, lambda c=case: unlearning.throughput(**c, **kw)))
  if "regions" in args.only:
    for case in p["regions"]:
      jobs.append(("regions", case, lambda c=case: regions.throughput(**c, **kw, **flop_kw)))

  doc = {"machine": info, "created": datetime.datetime.now().isoformat(timespec="seconds"),
         "settings": {"quick": args.quick, "only": sorted(args.only), "argv": sys.argv[1:],
                      "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "timing": p["timing"]},
         "results": [], "skipped": [], "errors": [], "complete": False}
  if compute_dtypes != ["float32"]:
    doc["settings"]["compute_dtypes"] = list(compute_dtypes)
  start = time.perf_counter()
  for bench, case, thunk in jobs:
    if case == "skip":
      doc["skipped"].append({"benchmark": bench, "reason": thunk})
      print(f"[{bench}] skipped: {thunk}", file=sys.stderr)
      continue
    job_start = time.perf_counter()
    try:
      rows = thunk()
    except Exception as e:  # pylint: disable=broad-except
      # One broken case must not cost the others' numbers; the run still exits non-zero.
      doc["errors"].append({"benchmark": bench, "case": repr(case),
                            "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc()[-4000:]})
      print(f"[{bench}] ERROR {type(e).__name__}: {e}", file=sys.stderr)
      continue
    for row in rows:
      doc["results"].append(row)
      print(f"[{bench}] {report.case_label(row)} {row['strategy']}: "
            f"{report.number(row['rate'])} {row['unit'] or ''}", file=sys.stderr)
    print(f"[{bench}] case done in {time.perf_counter() - job_start:.1f} s", file=sys.stderr)
    jax.clear_caches()   # bounded memory over many compiled programs
    if checkpoint is not None:
      doc["total_s"] = time.perf_counter() - start
      checkpoint(doc)
  doc["total_s"] = time.perf_counter() - start
  doc["complete"] = True
  return doc


def _dtype(row: dict) -> str:
  return row.get("compute_dtype", "float32")


def _only_dtype(doc: dict, compute_dtype: str) -> dict:
  return dict(doc, results=[r for r in doc["results"] if _dtype(r) == compute_dtype])


def _with_dtype_column(table: str, rows: list[dict]) -> str:
  """`report.results_table` with a dtype column after the strategy (same rows, same order)."""
  lines = table.split("\n")
  cells = [" dtype ", "---"] + [f" {_dtype(r)} " for r in rows if r["benchmark"] != "sweep"]
  if len(lines) != len(cells):
    raise ValueError("results table and rows differ; cannot add the dtype column")
  out = []
  for line, cell in zip(lines, cells):
    parts = line.split("|")
    out.append("|".join(parts[:4] + [cell] + parts[4:]))
  return "\n".join(out)


def dtype_comparison_table(doc: dict) -> str:
  """Per training case and strategy: examples/s at each dtype and bfloat16's speed-up."""
  by_case: dict = {}
  for r in doc["results"]:
    if r["benchmark"] == "train":
      key = (r["model"], r["dataset"], r["width"], r["members"], r["batch_size"], r["strategy"])
      by_case.setdefault(key, {})[_dtype(r)] = r
  lines = ["| model/data | width | S | batch | strategy | float32 examples/s | "
           "bfloat16 examples/s | bf16 / f32 |", "|---|---:|---:|---:|---|---:|---:|---:|"]
  for (model, dataset, width, members, batch, strategy), rows in by_case.items():
    f32, bf16 = rows.get("float32"), rows.get("bfloat16")
    ratio = f"{bf16['rate'] / f32['rate']:.2f}" if f32 and bf16 else "-"
    lines.append(f"| {model}/{dataset} | {width} | {members} | {batch} | {strategy} | "
                 f"{report.number(f32 and f32['rate'])} | {report.number(bf16 and bf16['rate'])}"
                 f" | {ratio} |")
  return "\n".join(lines)


def to_markdown(doc: dict) -> str:
  """`report.to_markdown`, and with several compute dtypes: a dtype column in the results
  table, one strategy-choice table per dtype and a bfloat16-vs-float32 table."""
  dtypes = sorted({_dtype(r) for r in doc["results"]}, key=_dtype_order)
  if dtypes in ([], ["float32"]):
    text = report.to_markdown(doc)
  else:
    parts = [f"# Benchmarks\n\n{report.machine_line(doc)}\n"]
    if any(r["benchmark"] != "sweep" for r in doc["results"]):
      parts += ["## Results\n", _with_dtype_column(report.results_table(doc), doc["results"]),
                "\nbfloat16 rows: `% peak` is of the dense bf16 peak on accelerators "
                "(`reference_peak_flops` in the JSON)."]
    if any(r["benchmark"] == "sweep" for r in doc["results"]):
      parts += ["\n## Default sweep end to end\n", report.sweep_table(doc)]
    if any(r["benchmark"] == "train" for r in doc["results"]):
      parts += ["\n## bfloat16 vs float32 (training)\n", dtype_comparison_table(doc)]
    for dtype in dtypes:
      sub = _only_dtype(doc, dtype)
      if any(r["benchmark"] in ("train", "unlearn") for r in sub["results"]):
        parts += [f"\n## Strategy choice ({dtype})\n", report.strategy_table(sub)]
    for item in doc.get("skipped", []):
      parts.append(f"\n- skipped {item['benchmark']}: {item['reason']}")
    for item in doc.get("errors", []):
      parts.append(f"\n- ERROR in {item['benchmark']}: {item['error']}")
    text = "\n".join(parts) + "\n"
  if doc.get("complete") is False:
    text += "\n- INCOMPLETE: the run stopped before its last case; these are the cases done.\n"
  return text


def _dtype_order(name: str) -> tuple:
  return (COMPUTE_DTYPES.index(name) if name in COMPUTE_DTYPES else len(COMPUTE_DTYPES), name)


def write(doc: dict, out: str) -> str:
  """Writes the JSON and the markdown next to it (.md); returns the markdown."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  markdown = to_markdown(doc)
  for path, text in ((out, json.dumps(doc, indent=1)),
                     (os.path.splitext(out)[0] + ".md", markdown)):
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
  return markdown


def _csv(cast):
  return lambda text: [cast(v) for v in text.split(",") if v]


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="tiniest sizes (tests, smoke checks)")
  parser.add_argument("--only", type=_csv(str), default=None,
                      help=f"comma-separated subset of {','.join(BENCHMARKS)} "
                      "(default: all but sweep)")
  parser.add_argument("--out", help="JSON output path (default benchmarks/results/<machine>.json)")
  parser.add_argument("--models", type=_csv(str), help="training cases: only these model families")
  parser.add_argument("--widths", type=_csv(float), help="training cases: these widths")
  parser.add_argument("--members", type=int, help="training cases: members S")
  parser.add_argument("--strategies", type=_csv(str),
                      help="training cases: e.g. vmap-scan,loop-host,chunk4-scan,auto")
  parser.add_argument("--batch-size", type=int, help="training cases: batch size")
  parser.add_argument("--steps", type=int, help="synthetic-image cases: steps per timed call")
  parser.add_argument("--compute-dtypes", type=_csv(str), default=None,
                      help="training cases: comma-separated activation dtypes to run each case "
                      f"at, of {','.join(COMPUTE_DTYPES)} (default: float32)")
  parser.add_argument("--peak-flops", type=float, help="reference peak FLOP/s (overrides the "
                      "CPU estimate / GPU table)")
  parser.add_argument("--sweep-config", default="configs/mnist1d_mlp.py")
  parser.add_argument("--table-only", nargs="+", metavar="JSON",
                      help="print the markdown of stored result files and exit")
  parser.add_argument("--update-readme", action="store_true",
                      help="with --table-only: rewrite the Strategy choice block of README.md")
  args = parser.parse_args(argv)
  only = set(args.only or [b for b in BENCHMARKS if b != "sweep"])
  unknown = only - set(BENCHMARKS)
  if unknown:
    parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
  args.only = only
  dtypes = list(dict.fromkeys(args.compute_dtypes or ["float32"]))
  bad = [d for d in dtypes if d not in COMPUTE_DTYPES]
  if bad:
    parser.error(f"unknown compute dtype(s) {bad}; choose from {COMPUTE_DTYPES}")
  args.compute_dtypes = dtypes
  if args.widths:   # integer widths stay integers in the results (model names use them)
    args.widths = [int(w) if w == int(w) else w for w in args.widths]
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.table_only:
    docs = []
    for path in args.table_only:
      with open(path) as f:
        docs.append(json.load(f))
    if args.update_readme:
      readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
      with open(readme) as f:
        text = f.read()
      # The README's strategy choice is for the default dtype, float32.
      with open(readme, "w") as f:
        f.write(report.update_readme(text, report.strategy_sections(
            [_only_dtype(d, "float32") for d in docs])))
      print(f"updated {readme}")
    else:
      print("\n\n".join(to_markdown(d) for d in docs))
    return 0

  from benchmarks import machine  # pylint: disable=g-import-not-at-top
  out_path = lambda doc: args.out or os.path.join(
      RESULTS_DIR, machine.slug(doc["machine"]) + ("-quick" if args.quick else "") + ".json")
  doc = run_benchmarks(args, checkpoint=lambda d: write(d, out_path(d)))
  out = out_path(doc)
  markdown = write(doc, out)
  print(markdown)
  print(f"wrote {out} ({doc['total_s']:.0f} s)", file=sys.stderr)
  return 1 if doc["errors"] else 0


if __name__ == "__main__":
  sys.exit(main())
