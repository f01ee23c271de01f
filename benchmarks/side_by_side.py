r"""Two independent training programs one after the other vs side by side in two threads.

    python -m benchmarks.side_by_side --cases=16x9,128x9,256x3 --epochs=20

Each case (width x members) is the sweep's training program of the MNIST-1D MLP (2 hidden
layers, batch 128, 25 steps per epoch, all members vmapped, epochs as `lax.scan`) on random data
of MNIST-1D's shape. It times `epochs` epochs twice in one thread, then twice in two threads at
once, and checks that both ways give bitwise the same parameters. The ratio is what
`experiments/stage_pool.py` counts on: XLA:CPU runs one such program on about one core.
"""
from __future__ import annotations

import argparse
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import train
from unlearn_jax.train import batches, drivers
from unlearn_jax.train.state import make_train_step

EXAMPLES, FEATURES, CLASSES, BATCH = 3200, 40, 10, 128


def case(width: int, members: int, epochs: int) -> dict:
  grid = train.member_grid(list(range(members)), [width], [0.05], [5e-4])
  rng = np.random.RandomState(0)
  data = {"x": jnp.asarray(rng.randn(EXAMPLES, FEATURES).astype(np.float32)),
          "y": jnp.asarray(rng.randint(0, CLASSES, EXAMPLES).astype(np.int32))}
  tx = train.make_optimizer("sgd", "cosine", epochs * (EXAMPLES // BATCH), momentum=0.9)
  model, state, _ = train.init_members("mlp", grid, CLASSES, data["x"][:2], tx, depth=2)
  driver = drivers.Driver(make_train_step(model, train.any_optimizer(tx), False),
                          drivers.Strategy(0, "scan"))
  keys = train.member_keys(grid, 0)
  pool = jnp.arange(EXAMPLES, dtype=jnp.int32)
  idx = [batches.epoch_batches(keys, pool, BATCH, e) for e in range(epochs)]
  epoch_keys = [batches.fold_in_members(keys, e) for e in range(epochs)]
  jax.block_until_ready(driver(state, data, idx[0], epoch_keys[0]))   # compile

  def run(out: list) -> None:
    s = state
    for e in range(epochs):
      s, _ = driver(s, data, idx[e], epoch_keys[e])
    out.append(jax.block_until_ready(s))

  start, one_after_other = time.perf_counter(), []
  run(one_after_other)
  run(one_after_other)
  sequential = time.perf_counter() - start
  start, side_by_side = time.perf_counter(), []
  threads = [threading.Thread(target=run, args=(side_by_side,)) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  parallel = time.perf_counter() - start
  same = all(np.array_equal(a, b) for s in side_by_side
             for a, b in zip(jax.tree.leaves(one_after_other[0]), jax.tree.leaves(s)))
  return {"width": width, "members": members, "epochs": epochs, "sequential_s": sequential,
          "side_by_side_s": parallel, "speedup": sequential / parallel, "bitwise_equal": same}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--cases", default="16x9,128x9,256x3",
                      help="width x members, comma-separated (the default: the 3-seed sweep's "
                           "three buckets)")
  parser.add_argument("--epochs", type=int, default=20)
  args = parser.parse_args(argv)
  print("| width | members | 2 x epochs one after the other (s) | side by side (s) | speedup "
        "| bitwise equal |\n|---:|---:|---:|---:|---:|---|")
  for spec in args.cases.split(","):
    width, members = map(int, spec.split("x"))
    r = case(width, members, args.epochs)
    print(f"| {width} | {members} | {r['sequential_s']:.2f} | {r['side_by_side_s']:.2f} | "
          f"{r['speedup']:.2f}x | {r['bitwise_equal']} |", flush=True)


if __name__ == "__main__":
  main()
