"""Per-example likelihood-ratio membership inference (LiRA, Carlini et al. 2022) and its unlearning
variant U-LiRA (Hayes et al. 2024), as pure NumPy functions.

The statistic of a model on an example is the logit-scaled true-class confidence
(`metrics.logit_scaled_confidence`). For every target example, shadow models give two samples of
it: "in" (models that trained on the example; for U-LiRA: trained on it and then unlearned it)
and "out" (models that never saw it; for U-LiRA: retrained without it). Each is fitted by a
Gaussian per example, and a target model's statistic s is scored by

  * online:  log N(s; mu_in, sd_in^2) - log N(s; mu_out, sd_out^2)  (the likelihood ratio);
  * offline: (s - mu_out) / sd_out, the one-sided test against "out" alone (monotone in the
    p-value, so it ranks exactly as the paper's offline score).

Higher scores mean "member". The attack's quality over (target model, example) pairs is its ROC
AUC and its TPR at a low FPR (1%, 0.1%: the regime that matters for privacy), with a two-way
bootstrap interval (models of each side and examples resampled).

Means and standard deviations are the sample mean and the population (ddof 0) standard deviation
over the finite shadow values; Carlini et al.'s released code uses the median for the means.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

MIN_STD = 1e-6   # keeps a Gaussian fitted to identical values (saturated models) finite


def gaussian_fit(samples: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-column mean, standard deviation and count over the rows where `mask` holds.

  Args:
    samples: (M, N) statistic of M shadow models on N examples; non-finite values (diverged
      models) are left out.
    mask: (M, N) bool, which shadow models belong to the sample of each example (None: all).

  Returns:
    (mean, std, count), each (N,); mean and std are NaN where fewer than 2 values remain.
  """
  samples = np.asarray(samples, np.float64)
  use = np.isfinite(samples) if mask is None else (np.asarray(mask, bool)
                                                   & np.isfinite(samples))
  count = use.sum(axis=0)
  values = np.where(use, samples, 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = values.sum(axis=0) / count
    var = (np.where(use, samples - mean, 0.0) ** 2).sum(axis=0) / count
  enough = count >= 2
  mean = np.where(enough, mean, np.nan)
  std = np.where(enough, np.maximum(np.sqrt(var), MIN_STD), np.nan)
  return mean, std, count


def _log_normal(x, mean, std):
  return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2.0 * np.pi)


def online_scores(stats: np.ndarray, fit_in, fit_out) -> np.ndarray:
  """Log likelihood ratio in vs out of target statistics `stats` (..., N) per example."""
  return (_log_normal(np.asarray(stats, np.float64), fit_in[0], fit_in[1])
          - _log_normal(np.asarray(stats, np.float64), fit_out[0], fit_out[1]))


def offline_scores(stats: np.ndarray, fit_out) -> np.ndarray:
  """How far above the "out" Gaussian the statistic lies, in its standard deviations."""
  return (np.asarray(stats, np.float64) - fit_out[0]) / fit_out[1]


def roc_auc(positives, negatives) -> float:
  """Area under the ROC curve: P(score of a positive > a negative's) + P(tie) / 2."""
  pos, neg = _finite(positives), _finite(negatives)
  if not (len(pos) and len(neg)):
    return float("nan")
  # Ranks 1..n, tied scores sharing their average rank.
  _, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True,
                                 return_counts=True)
  ends = np.cumsum(counts)
  ranks = (ends - (counts - 1) / 2)[inverse]
  u = ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
  return float(u / (len(pos) * len(neg)))


def tpr_at_fpr(positives, negatives, fpr: float) -> float:
  """The highest true-positive rate of a threshold whose false-positive rate is at most `fpr`.

  A threshold t calls "member" every score >= t. At most k = floor(fpr * n_neg) negatives may
  pass, so t must lie above the (k+1)-th largest negative score v, and the best such t passes
  every positive above v (the ROC curve's point at FPR <= fpr, as scikit-learn draws it).
  """
  pos, neg = _finite(positives), _finite(negatives)
  if not (len(pos) and len(neg)):
    return float("nan")
  allowed = int(np.floor(fpr * len(neg) + 1e-9))
  if allowed >= len(neg):
    return 1.0
  v = np.sort(neg)[::-1][allowed]
  return float(np.mean(pos > v))


def attack_metrics(positives, negatives, fprs: Sequence[float]) -> dict[str, float]:
  """{'auc', 'tpr@<fpr>'...} of scores of members (positives) and non-members (negatives)."""
  out = {"auc": roc_auc(positives, negatives)}
  for f in fprs:
    out[f"tpr@{f:g}"] = tpr_at_fpr(positives, negatives, f)
  return out


def two_way_bootstrap(positives: np.ndarray, negatives: np.ndarray,
                      statistic: Callable[[np.ndarray, np.ndarray], dict[str, float]],
                      num_resamples: int = 1000, level: float = 0.95, seed: int = 0
                      ) -> dict[str, tuple[float, float]]:
  """Percentile intervals of `statistic(pos, neg)` over scores of (model, example) pairs.

  Args:
    positives, negatives: (models, N) scores of member and non-member target models on the
      same N examples. Each resample draws the models of each side and the examples (shared by
      both sides) with replacement: both the models and the examples are samples.
    statistic: maps flattened (pos, neg) score arrays to {name: value}.

  Returns:
    {name: (low, high)}.
  """
  positives, negatives = np.asarray(positives), np.asarray(negatives)
  rng = np.random.default_rng(seed)
  n = positives.shape[1]
  draws: dict[str, list] = {}
  for _ in range(num_resamples):
    ex = rng.integers(0, n, n)
    p = positives[rng.integers(0, len(positives), len(positives))][:, ex]
    q = negatives[rng.integers(0, len(negatives), len(negatives))][:, ex]
    for name, value in statistic(p.ravel(), q.ravel()).items():
      draws.setdefault(name, []).append(value)
  alpha = (1.0 - level) / 2
  return {name: tuple(float(x) for x in np.nanquantile(v, [alpha, 1.0 - alpha]))
          for name, v in draws.items()}


def _finite(x) -> np.ndarray:
  x = np.asarray(x, np.float64).ravel()
  return x[np.isfinite(x)]
