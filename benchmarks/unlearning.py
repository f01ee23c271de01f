"""Unlearning throughput: a method's grid (G points) x S seeds, vmapped vs one member at a time.

The S originals are expanded to S * G members (`methods.expand_grid`), so every grid point's
hyperparameters are member-axis data and one compiled program serves the whole grid. The vmapped
strategy runs all S * G members at once; `loop-*` runs them one at a time through the same runner
(the Driver's unbatched path). The originals are freshly initialised, not trained: the work per
step does not depend on the weights.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import train
from benchmarks import timing, training


def methods_module():
  """`unlearn_jax.methods` if it exposes the runner, else (None, why)."""
  try:
    from unlearn_jax import methods  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    return None, f"import unlearn_jax.methods failed: {type(e).__name__}: {e}"
  missing = [n for n in ("unlearn", "get", "expand_grid", "repeat_members", "ForgetTask",
                        "MemberInputs", "RunSettings") if not hasattr(methods, n)]
  if missing:
    return None, f"unlearn_jax.methods does not expose {missing} yet"
  return methods, None


def small_grid(grid, values_per_name: Optional[int]):
  """The method's default grid, each name cut to its first values_per_name values (None: all)."""
  return {k: tuple(v)[:values_per_name] for k, v in grid.items()}


def throughput(workload: training.Workload, width: float, seeds: int, method_name: str,
               strategies: Sequence[str], *, values_per_name: Optional[int], forget_size: int,
               batch_size: int, epochs: int, timing_kw: dict) -> list[dict]:
  """One row per strategy: G grid points x S seeds unlearned for `epochs` epochs."""
  methods, why = methods_module()
  if methods is None:
    raise NotImplementedError(why)
  data, num_classes = training.load(workload)
  seed_members = training.member_list(seeds, [width])
  model, variables = training.init_variables(workload.model, seed_members, num_classes,
                                             data["x"][:2])
  method = methods.get(method_name)
  grid = small_grid(method.grid, values_per_name)
  originals, hparams, points = methods.expand_grid(variables, grid)
  num = seeds * len(points)
  keys = methods.repeat_members(train.member_keys(seed_members, 2), len(points))
  # Every member's own width equals the model's: nothing is padded, all parameters are active.
  mask = jax.tree.map(jnp.ones_like, originals.params)
  order = np.random.default_rng(0).permutation(data["y"].shape[0])
  forget_idx, retain_idx = order[:forget_size], order[forget_size:]
  task = methods.ForgetTask(data, retain_idx, forget_idx)
  members = methods.MemberInputs(keys, hparams, mask, init_variables=originals)
  rows = []
  for name in strategies:
    strategy = training.parse_strategy(name, workload.model, width)
    settings = methods.RunSettings(epochs=epochs, batch_size=batch_size, strategy=strategy)
    run = lambda _, settings=settings: methods.unlearn(method, model, originals, task, members,
                                                       settings)
    # The runner caches compiled steps per (model, method, strategy): only the first call of
    # each strategy compiles, as in a tuning loop over grids.
    result, _ = timing.measure(run, None, **timing_kw)
    rows.append({
        "benchmark": "unlearn", "model": workload.model, "dataset": workload.dataset,
        "width": width, "method": method_name, "grid_points": len(points), "seeds": seeds,
        "members": num, "epochs": epochs, "batch_size": batch_size,
        "retain_size": len(retain_idx), "forget_size": len(forget_idx),
        "strategy": training.strategy_name(strategy),
        "rate": num / result.steady_s, "unit": "members/s",
        "rate_per_member": 1.0 / result.steady_s, **result.as_dict(),
        "flops_per_s": None, "fraction_of_peak": None,   # several phase programs: not counted
    })
  return rows
