"""Planning which widths share one padded member axis (a bucket).

Every member of a bucket runs at the bucket's widest shape (models/padding.py), so a bucket
bounds the waste by the ratio of its widest to its narrowest width, and holds only widths whose
variables have the same structure (only those can be zero-padded into each other).
"""
from __future__ import annotations

from typing import Callable, Hashable, Sequence


def width_buckets(widths: Sequence[float], max_ratio: float,
                  structure: Callable[[float], Hashable] | None = None
                  ) -> list[tuple[float, ...]]:
  """Groups sorted widths greedily so that widest/narrowest <= max_ratio within a bucket.

  With `structure` (width -> e.g. its variables' tree structure, `train.variable_structure`),
  a bucket also holds only widths of equal structure.
  """
  if not widths:
    raise ValueError("config.widths is empty.")
  if any(w <= 0 for w in widths):
    raise ValueError(f"widths must be positive, got {tuple(widths)}.")
  buckets: list[list[float]] = []
  for w in sorted(set(widths)):
    if (buckets and w <= buckets[-1][0] * max_ratio
        and (structure is None or structure(w) == structure(buckets[-1][0]))):
      buckets[-1].append(w)
    else:
      buckets.append([w])
  return [tuple(b) for b in buckets]
