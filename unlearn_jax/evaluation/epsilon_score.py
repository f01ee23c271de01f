"""Forgetting score of the NeurIPS 2023 Machine Unlearning challenge (per-example epsilon).

Protocol. The challenge (Triantafillou et al. 2024, "Are we making progress in unlearning?";
reference code google-deepmind/unlearning_evaluation, `metric.py`) starts from ONE original model
and runs the unlearning algorithm on it many times, the runs differing only in their randomness
(data order, random labels...), against many models retrained from scratch without the forget
set. Unlearning is (epsilon, delta)-successful if no test can tell the two groups apart. For each
forget example separately it estimates the epsilon implied by the best of a family of threshold
attacks on one statistic, the logit-scaled confidence log(p / (1 - p)) of the true class
(`metrics.logit_scaled_confidence`), seen under every unlearned model (one distribution) and
every retrained model (the other); per-example epsilons are then binned into a score:

* For each example, the side with the larger median is "positive".
* Two rule families give (FPR, FNR) pairs: one threshold (predict positive at or above it) on a
  grid of 100 thresholds per unit spanning both samples; and two thresholds (predict the peakier
  distribution, i.e. the one with the smaller range, inside [left, right]) on a 400 x 400 grid
  around that distribution.
* Each threshold bounds epsilon by max(log(1 - delta - FPR) - log(FNR),
  log(1 - delta - FNR) - log(FPR)), delta = 1e-5, floored at 0. FPR = FNR = 0 (perfect separation)
  gives infinity; exactly one of them 0 is discarded as a sign of too few samples.
* The example's epsilon is the largest bound, capped at 50. If one sample's range is below 1% of
  the other's (a suspiciously peaked distribution), epsilon is the cap outright.
* Epsilons are bucketed in steps of 0.5: [0, 0.5) earns 1 point, [0.5, 1) 1/2, the n-th bucket
  2 / 2^n, up to ceil(log(n_models - 1)); above that 0. The score is the mean over examples, in
  [0, 1], 1 = indistinguishable from retraining.

This module reproduces those rules with sorted-array counting (`np.searchsorted`) instead of the
reference's dense models x thresholds comparison on a GPU; the thresholds and tie rules are the
same. Deliberate differences, all in cases where the reference would crash or is undefined: both
samples constant -> epsilon 0 if they are equal and the cap if not; no usable threshold -> 0; the
two sides may have different numbers of models, and the bucket range uses the smaller count.
The challenge's final ranking multiplied this score by the retain- and test-accuracy ratios of
unlearned to retrained models (`utility_adjusted_score`).

Resolution at n models per side (verified in tests/test_eval_epsilon_score.py). Every FPR and
FNR is a multiple of 1/n, so an example's finite epsilon is 0 or one of the few values
log((n - i - n delta) / j), 1 <= i, j <= n - 1; the largest, about log(n - 1) (one model of each
side on the wrong side of the threshold), is what n models can resolve, hence the bucket cut-off
ceil(log(n - 1)): 14 buckets at n = 512 (the challenge's 512 unlearned and 512 retrained models
per forget set), 6 at n = 16, 4 at n = 8, 2 at n = 3, none at n = 2 (refused here). Anything
better separated reads as perfect separation (infinity) or a peaked sample (the cap), worth 0.
At n = 3 an example earns 1 (epsilon 0), 1/2 (epsilon log 2) or 0, nothing in between.

Each example's epsilon is also a maximum over ~160,000 threshold tests on small counts, so it is
biased upward: two independent samples from the SAME distribution do not score 1. Measured with
this module on Gaussian samples (40 examples, 5 draws): identical distributions score about 0.36
(0.34-0.40) at n = 3, where 3 vs 3 samples are often separable, 0.25 at n = 4, and 0.18-0.19 at
n = 8, 32 and 128 (only bit-identical samples score 1); what grows with n is the power to see a
difference: a one-standard-deviation shift scores 0.15 at n = 8, 0.06 at 32, 0.03 at 128, 0.017
at 512. So with a handful of models the score cannot tell a mediocre unlearner from an exact
one. Recommendation: at least 32 models per side, preferably 128 or more; compare scores only at
equal model counts; and report each score next to `retrained_baseline_score` (two disjoint halves
of the retrained models: what an exact unlearner gets at that count). For a width sweep with a few
seeds per width (S < 16), treat it as a coarse check and lean on the MIA and error gaps.
"""
from __future__ import annotations

import math

import numpy as np

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUCKET_SIZE = 0.5
# Half-width (in logit units) of the double-threshold search window, as in the reference.
_DOUBLE_BUFFER = 2.0


def _count_at_or_above(sorted_confs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  return len(sorted_confs) - np.searchsorted(sorted_confs, thresholds, side="left")


def _count_inside(sorted_confs: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Number of values c with left <= c <= right, for `left` (R, O) and `right` (R,).

  Both ends inclusive, as in the reference; windows with left > right contain nothing. `right`
  is shared by a row of `left`, so it is searched once per row, not once per window.
  """
  upto_right = np.searchsorted(sorted_confs, right, side="right")
  return np.maximum(upto_right[:, None] - np.searchsorted(sorted_confs, left, side="left"),
                    0).reshape(-1)


def _rates(predicted_pos_in_pos, n_pos, predicted_pos_in_neg, n_neg):
  """Distinct (FPR, FNR) pairs of a family of rules, from integer counts per rule.

  The counts take at most (n_pos + 1) x (n_neg + 1) values, far fewer than the ~160,000 rules,
  so each achieved pair is scored once. Rates come from integer counts, so the "exactly zero"
  tests downstream are exact.
  """
  achieved = np.zeros((n_pos + 1) * (n_neg + 1), bool)
  achieved[predicted_pos_in_pos * (n_neg + 1) + predicted_pos_in_neg] = True
  pos_counts, neg_counts = np.divmod(np.flatnonzero(achieved), n_neg + 1)
  return neg_counts / n_neg, (n_pos - pos_counts) / n_pos


def _single_threshold_rates(pos: np.ndarray, neg: np.ndarray, per_unit: int):
  """Distinct (FPR, FNR) of 'positive iff conf >= t' over a grid spanning both samples."""
  low = min(pos[0], neg[0])
  high = max(pos[-1], neg[-1])
  thresholds = np.linspace(low, high, int(math.ceil((high - low) * per_unit)))
  return _rates(_count_at_or_above(pos, thresholds), len(pos),
                _count_at_or_above(neg, thresholds), len(neg))


def _double_threshold_rates(pos: np.ndarray, neg: np.ndarray, per_unit: int):
  """Distinct (FPR, FNR) of 'peaky iff left <= conf <= right' over the reference's grid."""
  pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
  width = min(pos_range, neg_range)
  # This rule's "positive" is the peakier sample (ties: the negative one, as in the reference).
  # The rule is not symmetric under relabelling (inside vs outside), so the rates must be taken
  # with the peaky side as positive, not mapped back to the median-based labels.
  peaky, broad = (neg, pos) if pos_range >= neg_range else (pos, neg)
  low = peaky[0] + width - _DOUBLE_BUFFER
  high = peaky[-1] + _DOUBLE_BUFFER
  right = np.linspace(low, high, int(math.ceil((high - low) * per_unit)))
  offsets = np.linspace(-width - _DOUBLE_BUFFER, -width + _DOUBLE_BUFFER,
                        int(math.ceil(2 * _DOUBLE_BUFFER * per_unit)))
  left = right[:, None] + offsets[None, :]
  return _rates(_count_inside(peaky, left, right), len(peaky),
                _count_inside(broad, left, right), len(broad))


def _best_epsilon(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> float:
  with np.errstate(divide="ignore", invalid="ignore"):
    bound_a = np.log(1.0 - delta - fpr) - np.log(fnr)
    bound_b = np.log(1.0 - delta - fnr) - np.log(fpr)
  eps = np.maximum(np.fmax(bound_a, bound_b), 0.0)  # fmax skips the NaN of log(<0).
  perfect = (fpr == 0) & (fnr == 0)
  one_sided = (fpr == 0) ^ (fnr == 0)
  eps = np.where(perfect, np.inf, np.where(one_sided, np.nan, eps))
  usable = ~np.isnan(eps)
  # No usable threshold means no attack found evidence either way; the reference asserts here.
  return float(np.max(eps[usable])) if np.any(usable) else 0.0


def example_epsilon(pos_confs, neg_confs, delta: float = DELTA,
                    epsilon_cap: float = EPSILON_CAP,
                    thresholds_per_unit: int = THRESHOLDS_PER_UNIT) -> float:
  """Epsilon of one forget example from two samples of its statistic.

  Args:
    pos_confs: `(n_pos,)` statistic under the models of the side with the larger median.
    neg_confs: `(n_neg,)` statistic under the other side's models.
    delta: the delta of (epsilon, delta)-unlearning.
    epsilon_cap: largest epsilon reported.
    thresholds_per_unit: threshold-grid density (100 in the challenge; lower is faster/coarser).

  Returns:
    Epsilon in [0, epsilon_cap].
  """
  pos = np.sort(np.asarray(pos_confs, np.float64).reshape(-1))
  neg = np.sort(np.asarray(neg_confs, np.float64).reshape(-1))
  pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
  largest, smallest = max(pos_range, neg_range), min(pos_range, neg_range)
  if largest == 0:
    return 0.0 if pos[0] == neg[0] else float(epsilon_cap)
  if smallest / largest < 0.01:
    return float(epsilon_cap)
  fpr_double, fnr_double = _double_threshold_rates(pos, neg, thresholds_per_unit)
  fpr_single, fnr_single = _single_threshold_rates(pos, neg, thresholds_per_unit)
  eps = _best_epsilon(np.concatenate([fpr_double, fpr_single]),
                      np.concatenate([fnr_double, fnr_single]), delta)
  return float(np.clip(eps, 0.0, epsilon_cap))


def per_example_epsilons(unlearned_confs, retrained_confs, delta: float = DELTA,
                         epsilon_cap: float = EPSILON_CAP,
                         thresholds_per_unit: int = THRESHOLDS_PER_UNIT) -> np.ndarray:
  """Epsilon of every forget example.

  Args:
    unlearned_confs: `(n_unlearned_models, n_examples)` logit-scaled confidences.
    retrained_confs: `(n_retrained_models, n_examples)`, the same examples.
    delta, epsilon_cap, thresholds_per_unit: see `example_epsilon`.

  Returns:
    `(n_examples,)` epsilons in [0, epsilon_cap].
  """
  unlearned, retrained = _check_confs(unlearned_confs, retrained_confs)
  retrained_is_positive = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
  eps = np.empty(unlearned.shape[1])
  for i in range(unlearned.shape[1]):
    pos, neg = ((retrained[:, i], unlearned[:, i]) if retrained_is_positive[i]
                else (unlearned[:, i], retrained[:, i]))
    eps[i] = example_epsilon(pos, neg, delta, epsilon_cap, thresholds_per_unit)
  return eps


def bucket_points(num_models: int) -> np.ndarray:
  """Points of each 0.5-wide epsilon bucket: [1, 1/2, 1/4, ...] up to ceil(log(n - 1))."""
  if num_models < 2:
    raise ValueError(f"need at least 2 models per side, got {num_models}")
  max_epsilon = math.ceil(math.log(num_models - 1))
  num_buckets = int(max_epsilon / BUCKET_SIZE)
  return 0.5 ** np.arange(num_buckets)


def score_from_epsilons(epsilons, num_models: int) -> float:
  """Mean bucket points of per-example epsilons; epsilons past the last bucket earn 0."""
  epsilons = np.asarray(epsilons, np.float64)
  points = bucket_points(num_models)
  # Bucket k holds [k * 0.5, (k + 1) * 0.5): the reference's "first bucket with e < end" rule.
  bucket = np.floor(epsilons / BUCKET_SIZE).astype(np.int64)
  padded = np.append(points, 0.0)  # One extra bucket worth 0 for everything past the last one.
  return float(np.mean(padded[np.minimum(bucket, len(points))]))


def forget_score(unlearned_confs, retrained_confs, delta: float = DELTA,
                 epsilon_cap: float = EPSILON_CAP,
                 thresholds_per_unit: int = THRESHOLDS_PER_UNIT) -> float:
  """The challenge's forgetting score F in [0, 1] (1 = indistinguishable from retraining).

  Args:
    unlearned_confs: `(n_unlearned_models, n_examples)` logit-scaled confidences of the forget
      examples (`metrics.logit_scaled_confidence`), one row per unlearned model.
    retrained_confs: `(n_retrained_models, n_examples)`, one row per retrained model.
    delta, epsilon_cap, thresholds_per_unit: see `example_epsilon`.

  See the module docstring for how many models per side the score needs to mean something.
  """
  unlearned, retrained = _check_confs(unlearned_confs, retrained_confs)
  eps = per_example_epsilons(unlearned, retrained, delta, epsilon_cap, thresholds_per_unit)
  return score_from_epsilons(eps, min(unlearned.shape[0], retrained.shape[0]))


def retrained_baseline_score(retrained_confs, seed: int = 0, **kwargs) -> float:
  """`forget_score` of two random disjoint halves of the retrained models.

  This is what an exact unlearner would score with half as many models per side, i.e. the
  finite-sample ceiling to compare an unlearned score with (use the same count on both).
  """
  retrained = np.asarray(retrained_confs, np.float64)
  order = np.random.default_rng(seed).permutation(retrained.shape[0])
  half = retrained.shape[0] // 2
  return forget_score(retrained[order[:half]], retrained[order[half:2 * half]], **kwargs)


def utility_adjusted_score(score: float, unlearned_retain_acc: float, retrained_retain_acc: float,
                           unlearned_test_acc: float, retrained_test_acc: float) -> float:
  """The challenge's final score: F x (RA_u / RA_r) x (TA_u / TA_r)."""
  return float(score * (unlearned_retain_acc / retrained_retain_acc)
               * (unlearned_test_acc / retrained_test_acc))


def _check_confs(unlearned_confs, retrained_confs):
  unlearned = np.asarray(unlearned_confs, np.float64)
  retrained = np.asarray(retrained_confs, np.float64)
  if unlearned.ndim != 2 or retrained.ndim != 2 or unlearned.shape[1] != retrained.shape[1]:
    raise ValueError(f"expected (n_models, n_examples) arrays over the same examples, got "
                     f"{unlearned.shape} and {retrained.shape}")
  if min(unlearned.shape[0], retrained.shape[0]) < 3:
    # With 2 models there are no buckets (ceil(log 1) = 0) and every score would be 0.
    raise ValueError("need at least 3 models per side, 32+ to be meaningful (the challenge "
                     "used 512); see the module docstring")
  if not (np.all(np.isfinite(unlearned)) and np.all(np.isfinite(retrained))):
    raise ValueError("confidences must be finite; drop diverged models before scoring")
  return unlearned, retrained
