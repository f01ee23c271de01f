"""Population membership-inference attacks on an unlearned model (host-side, scikit-learn).

Two attacks that the unlearning literature reports, each matched to its reference code base:

* `loss_mia_accuracy`: the SCRUB attack (Kurmanji et al. 2023, meghdadk/SCRUB). A logistic
  regression tries to tell forget examples (members) from test examples (non-members) by their
  cross-entropy loss. Its cross-validated accuracy is the score: 0.5 is ideal privacy (the forget
  set looks unseen), 1.0 means the forget set is perfectly recognisable.
* `mia_efficacy`: SalUn's "MIA-efficacy" (Fan et al. 2024, OPTML-Group/Unlearn-Saliency,
  `evaluation/SVC_MIA.py`, the `confidence` entry). An RBF SVC learns members vs non-members on
  retain vs test true-class confidences and is applied to the forget set; the score is the
  fraction of forget examples it calls non-members (higher = more forgotten; a retrained model
  is the reference, not 1.0).

The attacks take per-example statistics (losses, confidences) of ONE model as 1-D arrays; compute
them with `metrics.per_example_loss` / `metrics.true_class_confidence` and loop over a sweep's
members with `per_member`. They run on the host because scikit-learn does; they are cheap next to
computing the statistics.
"""
from __future__ import annotations

import concurrent.futures
from typing import Callable, Mapping

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC

# SCRUB clips the loss feature to this range before fitting; it only matters for infinite or
# absurdly large losses, which would otherwise dominate the logistic regression's scaling.
LOSS_CLIP = 100.0


def _as_1d(name: str, values) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1:
    raise ValueError(f"{name} must be 1-D (one model's per-example values), got shape "
                     f"{values.shape}; use per_member for member-stacked arrays.")
  return values


def class_matched_subsample(pool_labels: np.ndarray, target_labels: np.ndarray, size: int,
                            rng: np.random.Generator) -> np.ndarray:
  """Indices into `pool_labels` of `size` examples whose classes follow `target_labels`.

  For each class the pool contributes as many examples as the target has (or all it has, if
  fewer); any shortfall is filled uniformly from the pool's unused examples. The attack should see
  the class mix of the forget set, because per-class loss levels differ and a class mismatch alone
  would let it beat 0.5 on a perfectly private model.

  Args:
    pool_labels: `(P,)` labels of the examples to choose from.
    target_labels: labels whose class histogram the subsample should follow.
    size: how many indices to return, at most `P`.
    rng: numpy generator (seeded by the caller).

  Returns:
    `(size,)` sorted unique int indices into the pool.
  """
  pool_labels = np.asarray(pool_labels)
  if size > len(pool_labels):
    raise ValueError(f"cannot draw {size} examples from a pool of {len(pool_labels)}")
  chosen = []
  classes, counts = np.unique(np.asarray(target_labels), return_counts=True)
  for cls, count in zip(classes, counts):
    candidates = np.flatnonzero(pool_labels == cls)
    take = min(count, len(candidates))
    chosen.append(rng.choice(candidates, size=take, replace=False))
  chosen = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
  # Only reached when the caller asks for fewer than len(target_labels) examples: thin uniformly.
  if len(chosen) > size:
    chosen = rng.choice(chosen, size=size, replace=False)
  if len(chosen) < size:
    rest = np.setdiff1d(np.arange(len(pool_labels)), chosen)
    chosen = np.concatenate([chosen, rng.choice(rest, size=size - len(chosen), replace=False)])
  return np.sort(chosen)


def _loss_attack_split(forget_labels, test_labels, num_forget: int, num_test: int, seed: int,
                       n_splits: int):
  """What SCRUB's loss attack draws from the labels alone (the same for every model): the test
  examples in forget classes, the balancing subsample, and the cross-validation folds.

  Returns (test_idx, forget_idx, folds): indices into the test and forget arrays of the balanced
  sides, and [(train, held-out)] index pairs into their concatenation [test side, forget side].
  """
  forget_labels = np.asarray(forget_labels).reshape(-1)
  test_labels = np.asarray(test_labels).reshape(-1)
  if num_forget != len(forget_labels) or num_test != len(test_labels):
    raise ValueError("each loss array needs one label per example")
  # Only test examples of forget classes: otherwise the attack could exploit class differences.
  test_idx = np.flatnonzero(np.isin(test_labels, np.unique(forget_labels)))
  forget_idx = np.arange(num_forget)
  rng = np.random.default_rng(seed)
  size = min(len(forget_idx), len(test_idx))
  if size < n_splits:
    raise ValueError(f"need at least n_splits={n_splits} examples per side, got {size} "
                     f"(forget {len(forget_idx)}, test in forget classes {len(test_idx)})")
  if len(test_idx) > size:
    test_idx = test_idx[class_matched_subsample(test_labels[test_idx], forget_labels, size, rng)]
  elif len(forget_idx) > size:
    forget_idx = forget_idx[class_matched_subsample(forget_labels, test_labels[test_idx], size,
                                                    rng)]
  members = np.concatenate([np.zeros(size, np.int64), np.ones(size, np.int64)])
  folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
  return test_idx, forget_idx, list(folds.split(np.zeros((2 * size, 1)), members))


def _loss_features(forget_losses, test_losses, test_idx, forget_idx) -> np.ndarray:
  return np.clip(np.concatenate([test_losses[..., test_idx], forget_losses[..., forget_idx]],
                                axis=-1), -LOSS_CLIP, LOSS_CLIP)


def loss_mia_accuracy(forget_losses, forget_labels, test_losses, test_labels, seed: int = 0,
                      n_splits: int = 5) -> float:
  """SCRUB's loss-based membership-inference accuracy for one model.

  What is matched from meghdadk/SCRUB (`membership_inference_attack` / `evaluate_attack_model`):
  members are forget examples (label 1), non-members are test examples restricted to the classes
  present in the forget set (label 0); the larger side is subsampled so both have the same size;
  the single feature is the per-example cross-entropy loss, clipped to [-100, 100]; the attacker is
  a default `sklearn.linear_model.LogisticRegression`; the score is the mean accuracy over 5
  stratified cross-validation splits seeded with `seed`.

  Where this deliberately differs: SCRUB subsamples uniformly; here the subsample of the larger
  side follows the other side's class histogram where the pool allows (see
  `class_matched_subsample`), which removes a class-mix signal unrelated to membership. SCRUB uses
  `StratifiedShuffleSplit` (5 random 10% test splits, which may overlap); here a shuffled
  `StratifiedKFold` scores every example exactly once, so the mean has lower variance for the same
  data. Both estimate the same quantity. `loss_mia_accuracy_members` computes the same attack for
  many models at once (an exact solver instead of scikit-learn's, same folds).

  Args:
    forget_losses: `(F,)` losses of forget examples.
    forget_labels: `(F,)` their labels (the labels the losses were computed against).
    test_losses: `(T,)` losses of test (or other never-trained-on) examples.
    test_labels: `(T,)` their labels.
    seed: seeds both the balancing subsample and the fold shuffle.
    n_splits: number of cross-validation folds.

  Returns:
    Mean cross-validated attack accuracy in [0, 1]; 0.5 is ideal privacy.

  Raises:
    ValueError: on non-finite losses, mismatched lengths, or fewer than `n_splits` examples per
      side after restricting the test set to the forget classes.
  """
  forget_losses = _as_1d("forget_losses", forget_losses)
  test_losses = _as_1d("test_losses", test_losses)
  if not (np.all(np.isfinite(forget_losses)) and np.all(np.isfinite(test_losses))):
    raise ValueError("losses must be finite (a diverged model has no meaningful MIA score)")
  test_idx, forget_idx, folds = _loss_attack_split(forget_labels, test_labels,
                                                   len(forget_losses), len(test_losses), seed,
                                                   n_splits)
  features = _loss_features(forget_losses, test_losses, test_idx, forget_idx)
  members = np.repeat([0, 1], len(features) // 2)
  scores = cross_val_score(LogisticRegression(), features.reshape(-1, 1), members, cv=folds,
                           scoring="accuracy")
  return float(np.mean(scores))


def fit_logistic_1d(x, y, c: float = 1.0, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
  """L2-regularised logistic regression on one feature, for many problems at once.

  Minimises c * sum_i log(1 + exp(-s_i (w x_i + b))) + w^2 / 2 with s_i = 2 y_i - 1 (the
  intercept is not penalised), scikit-learn's default `LogisticRegression` objective, by damped
  Newton steps on the 2x2 system; the objective is convex, so this reaches its minimum (more
  tightly than lbfgs's default tolerance).

  Args:
    x: `(B, n)` features of B problems. y: `(n,)` or `(B, n)` labels in {0, 1}.

  Returns:
    (w, b), each `(B,)`.
  """
  x = np.asarray(x, np.float64)
  s = np.broadcast_to(2.0 * np.asarray(y, np.float64) - 1.0, x.shape)
  w, b = np.zeros(len(x)), np.zeros(len(x))

  def objective(w, b):
    return c * np.logaddexp(0.0, -s * (w[:, None] * x + b[:, None])).sum(1) + 0.5 * w ** 2

  value = objective(w, b)
  for _ in range(iterations):
    z = w[:, None] * x + b[:, None]
    p = 0.5 * (1.0 + np.tanh(0.5 * z))        # sigmoid(z), overflow-free
    r = c * (p - (s + 1.0) / 2.0)             # d loss / d z
    h = c * p * (1.0 - p)
    g_w, g_b = (r * x).sum(1) + w, r.sum(1)
    h_ww, h_wb, h_bb = (h * x * x).sum(1) + 1.0, (h * x).sum(1), h.sum(1) + 1e-12
    det = h_ww * h_bb - h_wb ** 2
    step_w = (h_bb * g_w - h_wb * g_b) / det
    step_b = (h_ww * g_b - h_wb * g_w) / det
    if np.max(np.abs(step_w) + np.abs(step_b)) < 1e-12:   # converged everywhere
      break
    # Halve the step until the objective does not increase (per problem; rounding allowed).
    scale = np.ones(len(x))
    for _ in range(30):
      candidate = objective(w - scale * step_w, b - scale * step_b)
      worse = candidate > value + 1e-12 * np.abs(value)
      if not worse.any():
        break
      scale = np.where(worse, scale / 2, scale)
    w, b = w - scale * step_w, b - scale * step_b
    value = objective(w, b)
  return w, b


def loss_mia_accuracy_members(forget_losses, forget_labels, test_losses, test_labels,
                              seed: int = 0, n_splits: int = 5) -> np.ndarray:
  """`loss_mia_accuracy` of S models at once: `(S, F)`, `(S, T)` losses -> `(S,)` accuracies.

  The subsample and the folds depend on the labels only, so every model gets the ones
  `loss_mia_accuracy` would draw; the attacker is fitted exactly (`fit_logistic_1d`). It agrees
  with scikit-learn's lbfgs fit except where a held-out loss lies within lbfgs's tolerance of the
  decision threshold. NaN for a model with non-finite losses.
  """
  forget_losses = np.asarray(forget_losses, np.float64)
  test_losses = np.asarray(test_losses, np.float64)
  test_idx, forget_idx, folds = _loss_attack_split(
      forget_labels, test_labels, forget_losses.shape[1], test_losses.shape[1], seed, n_splits)
  features = _loss_features(forget_losses, test_losses, test_idx, forget_idx)
  finite = np.all(np.isfinite(features), axis=1)
  features = np.where(finite[:, None], features, 0.0)
  members = np.repeat([0, 1], features.shape[1] // 2)
  accuracy = np.zeros(len(features))
  for train, held_out in folds:
    w, b = fit_logistic_1d(features[:, train], members[train])
    predicted = (w[:, None] * features[:, held_out] + b[:, None]) > 0
    accuracy += (predicted == members[held_out]).mean(1)
  return np.where(finite, accuracy / len(folds), np.nan)


def mia_efficacy(retain_conf, test_conf, forget_conf, seed: int = 0,
                 max_train: int | None = None) -> float:
  """SalUn's MIA-efficacy: fraction of forget examples an RBF SVC calls non-members.

  What is matched from OPTML-Group/Unlearn-Saliency (`SVC_MIA` with `shadow_train` = retain
  subset, `shadow_test` = test set, `target_test` = forget set, `confidence` feature): the feature
  is the softmax probability of the true class; an `SVC(C=3, gamma='auto', kernel='rbf')` is fit
  with retain examples as members (1) and test examples as non-members (0), the two sides of equal
  size; the score is `1 - mean(prediction on forget)`.

  Where this differs: the reference takes the FIRST len(test) retain examples; here the larger side
  is subsampled at random (seeded), which does not depend on the data order. `max_train` caps each
  side further because SVC training is quadratic in the number of examples (the reference uses the
  whole 10k CIFAR test set; a cap of a few thousand changes the score little and is much faster).

  Args:
    retain_conf: `(R,)` true-class confidences of retain examples.
    test_conf: `(T,)` true-class confidences of test examples.
    forget_conf: `(F,)` true-class confidences of forget examples.
    seed: seeds the balancing subsample.
    max_train: optional cap on the examples per side used to fit the SVC.

  Returns:
    Fraction of forget examples predicted non-member, in [0, 1]. Compare to a retrained model's
    value; an original model typically scores near 0.
  """
  retain_conf = _as_1d("retain_conf", retain_conf)
  test_conf = _as_1d("test_conf", test_conf)
  forget_conf = _as_1d("forget_conf", forget_conf)
  for name, values in (("retain_conf", retain_conf), ("test_conf", test_conf),
                       ("forget_conf", forget_conf)):
    if not np.all(np.isfinite(values)):
      raise ValueError(f"{name} must be finite")
    if len(values) == 0:
      raise ValueError(f"{name} is empty")
  size = balanced_size(len(retain_conf), len(test_conf), max_train)
  rng = np.random.default_rng(seed)
  retain_conf = _subsample(retain_conf, size, rng)
  test_conf = _subsample(test_conf, size, rng)
  features = np.concatenate([retain_conf, test_conf]).reshape(-1, 1)
  members = np.concatenate([np.ones(size), np.zeros(size)])
  attacker = SVC(C=3, gamma="auto", kernel="rbf").fit(features, members)
  return float(1.0 - attacker.predict(forget_conf.reshape(-1, 1)).mean())


def balanced_size(n_members: int, n_nonmembers: int, max_train: int | None = None) -> int:
  """Examples per side when balancing two sets: the smaller size, capped by `max_train`."""
  size = min(n_members, n_nonmembers)
  return size if max_train is None else min(size, int(max_train))


def _subsample(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  # Drawing only when needed keeps the already-small side (and a caller's test of it) exact.
  if len(values) == size:
    return values
  return values[np.sort(rng.choice(len(values), size=size, replace=False))]


def per_member(attack_fn: Callable[..., float], member_arrays: Mapping[str, np.ndarray],
               workers: int = 1, **shared) -> np.ndarray:
  """Runs a one-model attack for every member of a sweep.

  Example:
    mia = per_member(loss_mia_accuracy,
                     dict(forget_losses=forget_loss_sn, test_losses=test_loss_sn),
                     forget_labels=y_forget, test_labels=y_test, seed=0)

  Args:
    attack_fn: e.g. `loss_mia_accuracy` or `mia_efficacy`.
    member_arrays: keyword name -> `(S, N)` array; row `s` is passed for member `s`.
    workers: threads to run members on. Worth it for `mia_efficacy` (libsvm releases the GIL:
      2 threads halve its time on 2 cores); `loss_mia_accuracy` is GIL-bound, keep it at 1.
      Scores do not depend on it.
    **shared: keyword arguments passed unchanged to every call (labels, seed, ...).

  Returns:
    `(S,)` float64 scores; NaN for a member whose arrays hold any non-finite value (a diverged
    member is reported, not crashed on).
  """
  arrays = {name: np.asarray(values) for name, values in member_arrays.items()}
  sizes = {values.shape[0] for values in arrays.values()}
  if len(sizes) != 1:
    raise ValueError(f"member arrays disagree on the member count: "
                     f"{ {name: v.shape for name, v in arrays.items()} }")
  (num_members,) = sizes
  finite = [m for m in range(num_members)
            if all(np.all(np.isfinite(values[m])) for values in arrays.values())]
  attack = lambda m: attack_fn(**{name: values[m] for name, values in arrays.items()}, **shared)
  scores = np.full(num_members, np.nan)
  if workers > 1 and len(finite) > 1:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      scores[finite] = list(pool.map(attack, finite))
  else:
    scores[finite] = [attack(m) for m in finite]
  return scores
