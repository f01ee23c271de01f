"""Decision-region evaluation throughput: plane grid points labelled per second.

`evaluation.decision_regions.plane_labels` labels T planes of R x R grid points under S
member-stacked models, generating the points on the device chunk by chunk. The unit of work is
one grid point labelled by one model, so `rate` is S * T * R^2 / s and `rate_per_member` is the
grid points per second of each model.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from unlearn_jax.evaluation import decision_regions
from unlearn_jax.train import apply_model
from benchmarks import timing, training


def throughput(workload: training.Workload, width: float, members: int, planes: int,
               resolution: int, batch_size: int, timing_kw: dict, peak: Optional[float]
               ) -> list[dict]:
  data, num_classes = training.load(workload)
  model, variables = training.init_variables(
      workload.model, training.member_list(members, [width]), num_classes, data["x"][:2])

  # One function object for every call, so plane_labels compiles once (it is a static arg).
  def logits_fn(v, x):
    return apply_model(model, v.params, v.batch_stats, x, bn_train=False)[0]

  # Planes live in the model's input space; float copies of the inputs serve for timing.
  x = jnp.asarray(data["x"], jnp.float32)
  pool = jnp.arange(x.shape[0])
  idx = decision_regions.triplets(pool[:planes], pool, planes, jax.random.key(0))
  x1s, x2s, x3s = x[idx[:, 0]], x[idx[:, 1]], x[idx[:, 2]]
  total = planes * resolution * resolution
  chunk = min(batch_size, total)

  run = lambda _: decision_regions.plane_labels(logits_fn, variables, x1s, x2s, x3s, resolution,
                                                batch_size=chunk)
  result, _ = timing.measure(run, None, **timing_kw)
  first = jax.tree.map(lambda a: a[0], variables)
  chunk_flops = timing.flops(logits_fn, first, x[:chunk])
  # Padded tail included: the last chunk is computed in full.
  executed = chunk_flops and chunk_flops * members * -(-total // chunk)
  work = members * total
  return [{
      "benchmark": "regions", "model": workload.model, "dataset": workload.dataset,
      "width": width, "members": members, "planes": planes, "resolution": resolution,
      "batch_size": chunk, "strategy": "vmap", "rate": work / result.steady_s,
      "unit": "grid points/s", "rate_per_member": total / result.steady_s, **result.as_dict(),
      **timing.flop_rates(executed, result.steady_s, peak),
  }]
