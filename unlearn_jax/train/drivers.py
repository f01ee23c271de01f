"""How a single-model step function is executed over a member axis and over steps.

One single-model step, several drivers (measured in benchmarks/):
  * members: all vmapped at once, in chunks of `member_chunk` vmapped members (or in `chunks`
    chunks), each chunk its own call, or one at a time (`member_chunk=1`, no vmap at all, so
    XLA:CPU keeps its fast plain convolutions). On CPU the chunks run side by side in threads
    (`member_chunks`), each program on about one core;
  * steps: `scan` runs a whole epoch inside one compiled program (fast for MLPs everywhere and
    for everything on accelerators); `host` calls a compiled step from Python (XLA:CPU runs
    convolutions inside `lax.scan` much slower than outside).
Whatever the strategy, the same member sees the same data order and keys, so results agree up
to float reassociation: chunks change the size of the member axis each dot sees, and at some
widths that changes the dots' last bits. So the strategy `auto` picks is fixed per backend and
model, never per machine, and the strategy that ran is part of a sweep's training identity.
(The committed results reproduce bitwise on AVX-512 CPUs; XLA:CPU's AVX2 kernels round
differently: benchmarks/results/cpu-amd-epyc-zen3.md.)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from unlearn_jax import compile_cache
from unlearn_jax.train import member_chunks

PyTree = Any
StepFn = Callable[[PyTree, PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]]

STEP_MODES = ("scan", "host")
CPU_MLP_CHUNKS = 2   # auto_strategy's member chunks for CPU MLPs


@dataclasses.dataclass(frozen=True)
class Strategy:
  member_chunk: int = 0   # 0: all members in one vmap
  steps: str = "scan"
  chunks: int = 1   # consecutive member chunks, each its own call (side by side on CPU)

  def __post_init__(self):
    if self.steps not in STEP_MODES:
      raise ValueError(f"Unknown step mode {self.steps!r}; allowed: {STEP_MODES}.")
    if self.member_chunk < 0:
      raise ValueError(f"member_chunk must be >= 0 (0 = all members), got {self.member_chunk}.")
    if self.chunks < 1:
      raise ValueError(f"chunks must be >= 1 (1 = all members in one call), got {self.chunks}.")
    if self.chunks > 1 and self.member_chunk:
      raise ValueError(f"Give the members per chunk (member_chunk={self.member_chunk}) or the "
                       f"number of chunks (chunks={self.chunks}), not both.")

  def chunk_size(self, num_members: int) -> int:
    """Members per compiled call (`member_chunks.map_member_chunks`; 0: all at once)."""
    if self.chunks > 1:
      return -(-num_members // self.chunks)
    return self.member_chunk


def auto_strategy(model_name: str, width: float, backend: str | None = None, *,
                  shares_cores: bool = False) -> Strategy:
  """Default strategy per backend and model family, chosen from measurements
  (benchmarks/results/h100_gpu_check.md, cpu-amd-epyc-zen3.md; BUILD.md says why).

  Accelerators: vmap every member and scan steps (small models only fill a GPU when batched),
  except ResNet-18 from width 16 up, which runs one member at a time (faster at every width
  measured from 16 up; at width 8 the gain did not pay for twice the compile time).
  CPU: MLPs up to width 512 vmap+scan in 2 member chunks side by side unless `shares_cores`
  (2, not the core count: chunk sizes can change the last bits, and results must not depend on
  the core count; one core runs them in turn). Wider MLPs one member at a time. The mCNN (its
  CPU formulation 'shifted', models/cnn.py) with a host step loop, vmapped in chunks of 4
  members up to width 4 and one member at a time above (benchmarks/results/cnn-formulation.md:
  16 seeds x 310 steps, width 4: 9.99 s in chunks of 4 vs 12.33 s one at a time; width 16:
  27.38 s one at a time vs 40.48 s in chunks of 4). ResNets one member at a time.

  shares_cores: the caller runs other programs side by side with this one (a sweep's stages), so
  the cores are busy without member chunks.
  """
  backend = backend or jax.default_backend()
  if backend != "cpu":
    # k=16 (Nakkiran) is a quarter of the standard ResNet-18; p=1 (SCRUB) is the standard one.
    if (model_name == "preact_resnet18" and width >= 16) or (
        model_name == "preact_resnet18_scrub" and width >= 1):
      return Strategy(1, "scan")
    return Strategy(0, "scan")
  if model_name == "mlp":
    if width > 512:
      return Strategy(1, "scan")
    return Strategy(0, "scan", chunks=1 if shares_cores else CPU_MLP_CHUNKS)
  if model_name == "cnn" and width <= 4:
    return Strategy(4, "host")
  return Strategy(1, "host")


def resolve_strategy(spec: str, model_name: str, width: float, *,
                     shares_cores: bool = False) -> Strategy:
  """Parses a config string 'auto' | '<chunk>,<scan|host>' (e.g. '0,scan', '1,host'), either
  optionally followed by ',chunks=<N>' (e.g. 'auto,chunks=1'); shares_cores: see
  `auto_strategy`."""
  parts = [p.strip() for p in spec.split(",")]
  options = {}
  try:
    for part in [p for p in parts if p.startswith("chunks=")]:
      parts.remove(part)
      options["chunks"] = int(part.partition("=")[2])
    if parts == ["auto"]:
      return dataclasses.replace(auto_strategy(model_name, width, shares_cores=shares_cores),
                                 **options)
    chunk, steps = parts
    return Strategy(int(chunk), steps, **options)
  except ValueError as e:
    raise ValueError(f"Bad strategy {spec!r} ({e}); use 'auto' or '<member_chunk>,<scan|host>' "
                     "such as '0,scan' or '1,host', optionally followed by ',chunks=<N>' (e.g. "
                     "'auto,chunks=1').") from e


class Driver:
  """Runs `step_fn(carry, data, inputs, key)` for T steps on every member.

  `carry` and `inputs` have a leading member axis S (inputs: (S, T, ...)); `data` is shared by
  all members; `keys` (S,) are per-member typed keys, and step t uses `fold_in(keys[s], t)`.
  The compiled functions are built once per Driver, so build one per (step_fn, strategy).
  """

  def __init__(self, step_fn: StepFn, strategy: Strategy):
    self.strategy = strategy

    def scan_steps(carry, data, inputs, key):
      def body(c, xs):
        inp, t = xs
        return step_fn(c, data, inp, jax.random.fold_in(key, t))
      steps = jax.tree.leaves(inputs)[0].shape[0]
      return jax.lax.scan(body, carry, (inputs, jnp.arange(steps)))

    def one_step(carry, data, inputs, key, t):
      return step_fn(carry, data, inputs, jax.random.fold_in(key, t))

    single = scan_steps if strategy.steps == "scan" else one_step
    if strategy.member_chunk == 1:
      # No vmap: slice out the member and add the axis back, which keeps plain convolutions.
      def unbatched(carry, data, inputs, key, *rest):
        squeeze = lambda tree: jax.tree.map(lambda x: x[0], tree)
        out = single(squeeze(carry), data, squeeze(inputs), key[0], *rest)
        return jax.tree.map(lambda x: x[None], out)
      self._fn = compile_cache.jit(unbatched)
    else:
      in_axes = (0, None, 0, 0) + ((None,) if strategy.steps == "host" else ())
      self._fn = compile_cache.jit(jax.vmap(single, in_axes=in_axes))

  def _run_chunk(self, carry, data, inputs, keys):
    if self.strategy.steps == "scan":
      return self._fn(carry, data, inputs, keys)
    steps = jax.tree.leaves(inputs)[0].shape[1]
    metrics = []
    for t in range(steps):
      carry, m = self._fn(carry, data, jax.tree.map(lambda x: x[:, t], inputs), keys, t)
      metrics.append(m)
    return carry, jax.tree.map(lambda *ms: jnp.stack(ms, axis=1), *metrics)

  def __call__(self, carry, data, inputs, keys):
    """Returns (carry, metrics) with metrics stacked (S, T, ...)."""
    return member_chunks.map_member_chunks(
        lambda c, i, k: self._run_chunk(c, data, i, k), self.strategy.chunk_size(keys.shape[0]),
        carry, inputs, keys)
