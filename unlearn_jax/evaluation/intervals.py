"""Bootstrap intervals and verdicts decided by them.

A claim about the science is a statistic over independent models (seeds, or examples for
per-example statistics) with an interval; its verdict comes from the interval:

    lo, hi = bootstrap_interval(per_seed_differences)          # 95% percentile interval
    verdict_at_least(lo, hi, threshold=0.0)                    # 'holds' / 'does not hold' / ...

Verdicts are three-valued: 'holds' (the whole interval satisfies the criterion), 'does not hold'
(none of it does) and 'inconclusive' (the interval straddles the threshold, e.g. seeds disagree);
a fourth, 'not testable here', is for a criterion the data cannot test (too few models, nothing
to measure against), which is never read as 'does not hold'.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
NOT_TESTABLE = "not testable"


def bootstrap_interval(values, statistic: Callable[[np.ndarray], np.ndarray] = None,
                       level: float = 0.95, num_resamples: int = 2000, seed: int = 0
                       ) -> tuple[float, float]:
  """Percentile bootstrap interval of `statistic` (default: the mean) over the leading axis.

  Args:
    values: `(n,)` or `(n, ...)`; rows are the independent units (seeds, examples) resampled
      with replacement. Non-finite rows are dropped first (diverged members).
    statistic: maps a `(B, n, ...)` stack of resamples to `(B,)`; default the mean over axis 1
      (and any further axes).
    level: coverage of the interval.
    num_resamples: bootstrap resamples; the interval is deterministic for a given `seed`.

  Returns:
    (low, high); (nan, nan) for fewer than 2 finite rows (no spread to resample).
  """
  values = np.asarray(values, np.float64)
  finite = np.all(np.isfinite(values.reshape(len(values), -1)), axis=1) if values.size else []
  values = values[np.asarray(finite, bool)] if len(values) else values
  if len(values) < 2:
    return float("nan"), float("nan")
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(values), (num_resamples, len(values)))
  resamples = values[idx]
  if statistic is None:
    stats = resamples.reshape(num_resamples, -1).mean(axis=1)
  else:
    stats = np.asarray(statistic(resamples), np.float64)
  alpha = (1.0 - level) / 2
  low, high = np.quantile(stats, [alpha, 1.0 - alpha])
  return float(low), float(high)


def verdict_at_least(low: float, high: float, threshold: float) -> str:
  """'holds' if the interval lies at or above `threshold`, 'does not hold' if entirely below."""
  if not (np.isfinite(low) and np.isfinite(high)):
    return INCONCLUSIVE
  if low >= threshold:
    return HOLDS
  if high < threshold:
    return FAILS
  return INCONCLUSIVE


def verdict_at_most(low: float, high: float, threshold: float) -> str:
  """'holds' if the interval lies at or below `threshold`, 'does not hold' if entirely above."""
  return verdict_at_least(-high, -low, -threshold)


def all_of(verdicts: Iterable[str]) -> str:
  """AND: fails if any fails; else not testable if any part is; holds if all hold; else
  inconclusive."""
  verdicts = list(verdicts)
  if FAILS in verdicts:
    return FAILS
  if not verdicts or NOT_TESTABLE in verdicts:
    return NOT_TESTABLE
  return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def any_of(verdicts: Iterable[str]) -> str:
  """OR over the testable parts: holds if any holds, inconclusive if any is, fails if the
  testable ones all fail; not testable if none is."""
  verdicts = list(verdicts)
  for verdict in (HOLDS, INCONCLUSIVE, FAILS):
    if verdict in verdicts:
      return verdict
  return NOT_TESTABLE
