r"""Every unlearning method at its default hyperparameters on the offline default, and the time of
one grid run vmapped against its grid points one at a time.

  python -m benchmarks.method_defaults [--widths=16,256] [--out=benchmarks/results/methods.json]

Trains MLP originals (3 seeds, the mnist1d_mlp config's recipe) at a narrow and a wide width, then
per method: (a) unlearns every seed at the method's defaults and reports forget/retain/test error
(mean over seeds); (b) runs the method's default grid x seeds once vmapped (one program, all
members) and once one grid point at a time (same members, separate calls), both after a warm-up
call, and reports seconds per unlearning run.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import mnist1d_mlp
from experiments import setup
from unlearn_jax import methods as methods_lib
from unlearn_jax import train

SPLITS = ("forget", "retain", "test")


def _block(tree):
  return jax.block_until_ready(tree)


def _errors(model, state, splits) -> dict:
  """{'<split>_error': mean over members} of the forget, retain and test sets."""
  sets = {"forget": (splits.x_train[splits.forget_idx], splits.y_train[splits.forget_idx]),
          "retain": (splits.x_train[splits.retain_idx], splits.y_train[splits.retain_idx]),
          "test": (splits.x_test, splits.y_test)}
  out = {}
  for name in SPLITS:
    x, y = sets[name]
    logits = train.predict_logits(model, state.params, state.batch_stats, jnp.asarray(x),
                                  batch_size=4096)
    out[f"{name}_error"] = float(np.nanmean((logits.argmax(-1) != np.asarray(y)).mean(-1)))
  return out


def run(widths, out_path: str) -> dict:
  config = mnist1d_mlp.get_config()
  config.compilation_cache_dir = ""
  splits, _ = setup.load_splits(config)
  data = {"x": jnp.asarray(splits.x_train), "y": jnp.asarray(splits.y_train)}
  t = config.train
  rows = []
  for width in widths:
    members = train.member_grid(config.seeds, [width], [t.learning_rate], [t.weight_decay])
    factory = train.make_optimizer(t.optimizer, t.schedule,
                                   t.epochs * (len(splits.y_train) // t.batch_size))
    model, state, mask = train.init_members("mlp", members, 10, data["x"][:2], factory, depth=2)
    state, _ = train.train(model, train.any_optimizer(factory), state, data,
                           np.arange(len(splits.y_train)), train.member_keys(members, 0),
                           epochs=t.epochs, batch_size=t.batch_size, augment=False,
                           strategy=train.Strategy(0, "scan"))
    originals = state.variables
    keys = train.member_keys(members, 2)
    fresh = [train.Member(m.seed + 1000, m.width, 0.0, 0.0) for m in members]
    _, fresh_state, _ = train.init_members("mlp", fresh, 10, data["x"][:2], factory, depth=2)
    fresh_vars = fresh_state.variables
    task = methods_lib.ForgetTask(data, splits.retain_idx, splits.forget_idx)
    settings = methods_lib.RunSettings(batch_size=128, strategy=train.Strategy(0, "scan"))
    rows.append({"width": width, "method": "original", **_errors(model, state, splits)})
    for name in methods_lib.names():
      method = methods_lib.get(name)
      st, _ = methods_lib.unlearn(method, model, originals, task,
                                  methods_lib.MemberInputs(keys, None, mask, fresh_vars), settings)
      row = {"width": width, "method": name, "uses_forget": method.uses_forget,
             "hparams": method.defaults, "epochs": method.epochs,
             **_errors(model, st, splits)}
      # Timing: the default grid x seeds vmapped vs one grid point at a time.
      expanded, hparams, points = methods_lib.expand_grid(originals, method.grid)
      reps = len(points)
      g_keys = methods_lib.repeat_members(keys, reps)
      g_mask = methods_lib.repeat_members(mask, reps)
      g_members = methods_lib.MemberInputs(g_keys, hparams, g_mask,
                                           methods_lib.repeat_members(fresh_vars, reps))
      call = lambda: _block(methods_lib.unlearn(method, model, expanded, task, g_members,
                                                settings))
      call()
      start = time.perf_counter()
      call()
      vmapped = time.perf_counter() - start
      one = lambda g: _block(methods_lib.unlearn(
          method, model, originals, task,
          methods_lib.MemberInputs(keys, {k: jnp.full((len(members),), points[g][k])
                                          for k in points[g]}, mask, fresh_vars), settings))
      one(0)
      start = time.perf_counter()
      for g in range(reps):
        one(g)
      separate = time.perf_counter() - start
      runs = reps * len(members)
      row.update(grid_points=reps, runs=runs, vmapped_s_per_run=vmapped / runs,
                 one_point_at_a_time_s_per_run=separate / runs,
                 speedup=separate / vmapped)
      rows.append(row)
      print(json.dumps(row), flush=True)
  result = {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
            "seeds": list(config.seeds), "rows": rows}
  os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
  with open(out_path, "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.splitext(out_path)[0] + ".md", "w") as f:
    f.write(markdown(rows))
  return result


def markdown(rows) -> str:
  lines = ["| width | method | forget err | retain err | test err | grid | s/run vmapped | "
           "s/run one point at a time (seeds vmapped) | speed-up |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    timing = (f"{r['grid_points']} | {r['vmapped_s_per_run']:.3f} | "
              f"{r['one_point_at_a_time_s_per_run']:.3f} | {r['speedup']:.1f}x"
              if "speedup" in r else " | | |")
    lines.append(f"| {r['width']} | {r['method']} | {r['forget_error']:.3f} | "
                 f"{r['retain_error']:.3f} | {r['test_error']:.3f} | {timing} |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--widths", default="16,256")
  parser.add_argument("--out", default="benchmarks/results/method_defaults.json")
  args = parser.parse_args()
  run([int(w) for w in args.widths.split(",")], args.out)


if __name__ == "__main__":
  main()
