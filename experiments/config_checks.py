"""Settings that would otherwise fail late (after training) or silently give wrong or empty
tables, checked before any data is loaded."""
from __future__ import annotations

import numbers

from experiments import evaluators as evaluators_lib, findings
from experiments.stages.unlearn import method_with_config
from unlearn_jax import methods as methods_lib
from unlearn_jax.evaluation import tuning

# Models whose width is a fraction p of the standard channel counts; the others count units.
FRACTIONAL_WIDTH_MODELS = ("preact_resnet18_scrub",)


def check(config) -> None:
  _check_widths(config)
  _check_positive(config, ("train.batch_size", "train.epochs", "train.checkpoint_every",
                           "unlearn.batch_size", "eval_batch_size", "dataset.forget_size"))
  if not config.seeds:
    raise ValueError("config.seeds is empty; give at least one seed, e.g. --config.seeds='(0,)'.")
  _check_distinct(config, "seeds", "its members would be copies of one model and count as "
                  "independent samples in every interval")
  _check_lambdas(config)
  _check_unlearn(config)
  workers = config.get("stage_workers", 0)
  if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
    raise ValueError(f"config.stage_workers={workers!r}; it must be an integer >= 0 (0: as many "
                     "as suit the machine, see experiments/stage_pool.py).")
  unknown = sorted(set(config.eval.goals) - set(tuning.OBJECTIVES))
  if unknown:
    raise ValueError(f"config.eval.goals has unknown goal(s) {unknown}; allowed: "
                     f"{sorted(tuning.OBJECTIVES)}.")
  if config.regions.lam not in tuple(config.eval.lambdas):
    raise ValueError(f"config.regions.lam={config.regions.lam} must be one of config.eval.lambdas "
                     f"{tuple(config.eval.lambdas)}: regions, epsilon scores and plane figures "
                     "are computed for the points selected at that lambda.")
  evaluators_lib.from_config(config)
  _check_lira(config)
  _check_report(config)


def _check_report(config) -> None:
  criteria = config.report.get("criteria", "relative")
  if criteria not in findings.CRITERIA:
    raise ValueError(f"config.report.criteria={criteria!r}; allowed: {list(findings.CRITERIA)}.")
  for name in ("gap_closed", "to_chance", "beyond_l1", "max_relative_cost", "max_test_cost",
               "never_trained_loss"):
    value = config.report.get(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
      raise ValueError(f"config.report.{name}={value!r}; it must be a number in (0, 1].")


def _check_distinct(config, field: str, why: str) -> None:
  """Refuses a repeated value in the sequence setting `field` (dotted, e.g. 'eval.lambdas')."""
  values = config
  for part in field.split("."):
    values = values[part]
  values = list(values)
  repeated = sorted({v for v in values if values.count(v) > 1})
  if repeated:
    raise ValueError(f"config.{field}={tuple(values)} repeats {repeated}: {why}; give each value "
                     "once.")


def _check_lambdas(config) -> None:
  lams = tuple(config.eval.lambdas)
  if not lams:
    raise ValueError("config.eval.lambdas is empty; e.g. --config.eval.lambdas='(0.2,0.6)'.")
  bad = [lam for lam in lams if isinstance(lam, bool) or not isinstance(lam, numbers.Real)
         or not 0.0 <= lam <= 1.0]
  if bad:
    raise ValueError(f"config.eval.lambdas={lams} has {bad}; a lambda weighs the goal against "
                     "validation error and must lie in [0, 1].")
  _check_distinct(config, "eval.lambdas", "each lambda is selected and reported once")


def _check_widths(config) -> None:
  widths = tuple(config.widths)
  if not widths:
    raise ValueError("config.widths is empty; e.g. --config.widths='(4,16,64)'.")
  _check_distinct(config, "widths", "each width is trained once, and a repeat would be folded "
                  "into it while the report lists it twice")
  fractional = config.model.name in FRACTIONAL_WIDTH_MODELS
  for w in widths:
    ok = (isinstance(w, numbers.Real) and not isinstance(w, bool) and w > 0
          and (fractional or float(w).is_integer()))
    if not ok:
      allowed = ("positive numbers (fractions p of the standard widths)" if fractional
                 else "positive integers")
      raise ValueError(f"config.widths has {w!r} (in {widths}); model {config.model.name!r} "
                       f"needs {allowed}.")


def _check_positive(config, fields) -> None:
  for field in fields:
    value = config
    for part in field.split("."):
      value = value[part]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f"config.{field}={value!r}; it must be a positive integer.")


def _check_unlearn(config) -> None:
  """Unknown method names anywhere in config.unlearn, and settings that would be ignored."""
  u, known = config.unlearn, set(methods_lib.names())
  for field, names in (("methods", list(u.methods)), ("grids", list(u.grids)),
                       ("epochs", list(u.epochs)), ("hparams", list(u.hparams))):
    unknown = sorted(set(names) - known)
    if unknown:
      raise ValueError(f"config.unlearn.{field} names unknown method(s) {unknown}; allowed: "
                       f"{sorted(known)}.")
    if "retrain" in names and field != "methods":
      raise ValueError(f"config.unlearn.{field}['retrain'] would be ignored: the retrained "
                       "references follow config.train (learning rate, weight decay, epochs, "
                       "batch size); set those instead.")
  for name in u.methods:
    if name != "retrain":
      method_with_config(config, name)   # unknown hyperparameter names raise here


def _check_lira(config) -> None:
  cfg = config.lira
  if not cfg.shadow_models:
    return
  if cfg.shadow_models < 4 or cfg.shadow_models % 2:
    raise ValueError(f"config.lira.shadow_models={cfg.shadow_models!r}; it must be 0 (off) or an "
                     "even number >= 4 (shadows come in pairs that split the candidates), e.g. "
                     "64.")
  methods = [m for m in config.unlearn.methods if m != "retrain"]
  unknown = sorted(set(cfg.methods) - set(methods))
  if unknown:
    raise ValueError(f"config.lira.methods names {unknown}, which config.unlearn.methods does not "
                     f"run; allowed: {methods}.")
  if len(config.seeds) < 2:
    raise ValueError("config.lira needs at least 2 seeds: its calibration row scores the "
                     "retrained references of half the seeds against the other half.")
  bad = [f for f in cfg.fprs if not 0.0 < f < 1.0]
  if bad:
    raise ValueError(f"config.lira.fprs has {bad}; false-positive rates lie in (0, 1).")
