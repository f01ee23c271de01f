"""Tidy result rows: one per (stage, method, width, seed, hparams, goal, lambda, split, metric).

Written as CSV so that `pandas.read_csv(workdir + '/results.csv')` is all a reader needs.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Iterable

COLUMNS = ("stage", "method", "width", "seed", "hparams", "goal", "lam", "split", "metric",
           "value", "selected")


def row(**fields) -> dict:
  out = {c: "" for c in COLUMNS}
  unknown = set(fields) - set(COLUMNS)
  if unknown:
    raise ValueError(f"unknown result columns {sorted(unknown)}; allowed: {COLUMNS}.")
  out.update(fields)
  if isinstance(out["hparams"], dict):
    out["hparams"] = json.dumps(out["hparams"], sort_keys=True)
  return out


def member_rows(stage: str, method: str, members: list[dict], metrics: dict, **extra) -> list:
  """One row per (member, (split, metric)) of per-member metrics {(split, metric): (S,)}."""
  return [row(stage=stage, method=method, width=m["width"], seed=m["seed"],
              hparams=m.get("hparams", {}), split=split, metric=metric, value=float(values[i]),
              **extra)
          for i, m in enumerate(members) for (split, metric), values in metrics.items()]


def write_csv(path: str, rows: Iterable[dict]) -> None:
  """Writes rows atomically (a killed run never leaves a half-written table)."""
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
      writer.writerow({k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in r.items()})
  os.replace(tmp, path)


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))
