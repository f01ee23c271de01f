"""How a single-model step function is executed over a member axis and over steps.

One single-model step, several drivers (measured in benchmarks/):
  * members: all vmapped at once, in chunks of `member_chunk` vmapped members (or in `chunks`
    chunks), each chunk its own call, or one at a time (`member_chunk=1`, no vmap at all, so
    XLA:CPU keeps its fast plain convolutions). On CPU the chunks run side by side in threads
    (`member_chunks`), each program on about one core;
  * steps: `scan` runs a whole epoch inside one compiled program (fast for MLPs everywhere and
    for everything on accelerators); `host` calls a compiled step from Python (XLA:CPU runs
    convolutions inside `lax.scan` about 20x slower than outside);
  * groups: a vmapped program's members split into `groups` consecutive groups, each vmapped
    on its own inside the same step. XLA:CPU runs independent operations of one program on
    several cores at once, but a single vmapped dot on one: with 2 groups the 2 cores each take
    half of every step's products. 16 MLP members' steps ran 1.1x (width 64), 1.6x (128) and
    1.2x (256) faster that way on 2 Xeon cores, but two chunks side by side ran faster still
    (2.3x, 1.8x, 1.3x; likely because one program's threads meet at every operation, the
    chunks' once per call: benchmarks/results/cpu-xeon-member-groups.md, cpu-amd-epyc-zen3.md).
Whatever the strategy, the same member sees the same data order and keys, so results agree up
to float reassociation.

`fused_dots` (XLA:CPU only) compiles the step programs with YNNPACK fusions of each dot and the
elementwise work around it, instead of XLA's default of library calls for the dots alone. MLP
steps of widths 64-128 run 1.2-1.65x faster that way on 2 Xeon cores (width 256: 0.9-1.06x),
the 3-seed sweep 1.3x (benchmarks/results/cpu-xeon-fused-dots.md); on 2 Zen 5 EPYC cores the
sweep gains 3% (cpu-amd-epyc-zen5.md). Their last bits differ from the default's, so it is
opt-in: the committed results are the default's.

Groups and chunks change only the size of the member axis each dot sees; at some widths that
changes the dots' last bits, so the strategy `auto` picks is fixed per backend and model, never
per machine. (The committed results reproduce bitwise on AVX-512 CPUs; XLA:CPU's AVX2 kernels
round differently: benchmarks/results/cpu-amd-epyc-zen3.md.)
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
# XLA:CPU debug option of the fused-dots step programs (the enum's full name: compiler_options
# do not take the short spelling XLA_FLAGS accepts).
FUSED_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@dataclasses.dataclass(frozen=True)
class Strategy:
  member_chunk: int = 0   # 0: all members in one vmap
  steps: str = "scan"
  fused_dots: bool = False   # XLA:CPU: dots fused with their elementwise neighbours (YNNPACK)
  groups: int = 1   # vmapped member groups inside one step (run side by side by XLA:CPU)
  chunks: int = 1   # consecutive member chunks, each its own call (side by side on CPU)

  def __post_init__(self):
    if self.steps not in STEP_MODES:
      raise ValueError(f"Unknown step mode {self.steps!r}; allowed: {STEP_MODES}.")
    if self.member_chunk < 0:
      raise ValueError(f"member_chunk must be >= 0 (0 = all members), got {self.member_chunk}.")
    if self.groups < 1:
      raise ValueError(f"groups must be >= 1 (1 = one vmap over the members), got {self.groups}.")
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
  """Default strategy per backend and model family (benchmarks/results/h100_gpu_check.md).

  Accelerators: vmap every member and scan steps (small models only fill a GPU when batched),
  except ResNet-18 from width 16 up, which runs one member at a time. On an H100 with jax 0.11.2
  (4 members, batch 128, examples/s summed over members) one at a time beat vmapping at every
  width measured: bfloat16 58.2k vs 46.7k at k=16 and 44k vs 26.2k at k=64, float32 39.5k vs
  19.4k at k=32 and 27.2k vs 9.4k at k=64. At k=8 the gain was 1.08x (55k vs 50.8k) for twice
  the compile time, so narrower ResNets stay vmapped.
  CPU: MLPs up to width 512 vmap+scan in 2 member chunks side by side unless `shares_cores`
  (2, not the core count: chunk sizes can change the last bits, and results must not depend on
  the core count; one core runs them in turn). 16 members trained 1.16-1.48x faster end to end
  that way at width 64 and 1.22-1.31x at width 256 than in one vmap, 1.49-1.58x and 1.08-1.12x
  than in 2 member groups (benchmarks/results/cpu-amd-epyc-zen3.md). Wider MLPs and all
  convolutional models one member at a time, and convolutional models with a host step loop.

  shares_cores: the caller runs other programs side by side with this one (a sweep's stages), so
  the cores are busy without chunks or groups. The 3-seed sweep of cpu-xeon-member-groups.md
  took 264 s with 2 groups against 218 s without.
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
  return Strategy(1, "host")


def resolve_strategy(spec: str, model_name: str, width: float, *,
                     shares_cores: bool = False) -> Strategy:
  """Parses a config string 'auto' | '<chunk>,<scan|host>' (e.g. '0,scan', '1,host'), either
  optionally followed by ',chunks=<N>', ',groups=<G>' and/or ',fused_dots' (e.g.
  'auto,chunks=1', '0,scan,groups=4', 'auto,fused_dots'); shares_cores: see `auto_strategy`."""
  parts = [p.strip() for p in spec.split(",")]
  options = {}
  try:
    for part in [p for p in parts if p == "fused_dots" or p.startswith(("groups=", "chunks="))]:
      parts.remove(part)
      if part == "fused_dots":
        options["fused_dots"] = True
      else:
        name, _, count = part.partition("=")
        options[name] = int(count)
    if parts == ["auto"]:
      return dataclasses.replace(auto_strategy(model_name, width, shares_cores=shares_cores),
                                 **options)
    chunk, steps = parts
    return Strategy(int(chunk), steps, **options)
  except ValueError as e:
    raise ValueError(f"Bad strategy {spec!r} ({e}); use 'auto' or '<member_chunk>,<scan|host>' "
                     "such as '0,scan' or '1,host', optionally followed by ',chunks=<N>', "
                     "',groups=<G>' and/or ',fused_dots' (e.g. 'auto,chunks=1', "
                     "'auto,fused_dots').") from e


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
    options = FUSED_DOTS if strategy.fused_dots else None   # CPU options: off elsewhere
    if strategy.member_chunk == 1:
      # No vmap: slice out the member and add the axis back, which keeps plain convolutions.
      def unbatched(carry, data, inputs, key, *rest):
        squeeze = lambda tree: jax.tree.map(lambda x: x[0], tree)
        out = single(squeeze(carry), data, squeeze(inputs), key[0], *rest)
        return jax.tree.map(lambda x: x[None], out)
      self._fn = compile_cache.jit(unbatched, options=options)
    elif strategy.groups > 1:
      grouped = _grouped_scan if strategy.steps == "scan" else _grouped_step
      vstep = jax.vmap(one_step, in_axes=(0, None, 0, 0, None))
      self._fn = compile_cache.jit(lambda *args: grouped(vstep, strategy.groups, *args),
                                   options=options)
    else:
      in_axes = (0, None, 0, 0) + ((None,) if strategy.steps == "host" else ())
      self._fn = compile_cache.jit(jax.vmap(single, in_axes=in_axes), options=options)

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


def group_bounds(num: int, groups: int) -> list[tuple[int, int]]:
  """[start, stop) of `groups` consecutive member groups of near-equal size (larger ones first),
  at most one group per member."""
  groups = min(groups, num)
  sizes = [num // groups + (g < num % groups) for g in range(groups)]
  stops = [sum(sizes[:g + 1]) for g in range(groups)]
  return list(zip([0] + stops[:-1], stops))


def _split_groups(groups: int, *trees) -> list[tuple]:
  num = jax.tree.leaves(trees[0])[0].shape[0]
  return [tuple(jax.tree.map(lambda x: x[lo:hi], t) for t in trees)
          for lo, hi in group_bounds(num, groups)]


def _concat_members(outs, axis: int = 0):
  return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *outs)


def _grouped_step(vstep, groups, carry, data, inputs, keys, t):
  """One step of every member, each group vmapped on its own."""
  outs = [vstep(c, data, i, k, t) for c, i, k in _split_groups(groups, carry, inputs, keys)]
  return _concat_members([o[0] for o in outs]), _concat_members([o[1] for o in outs])


def _grouped_scan(vstep, groups, carry, data, inputs, keys):
  """All steps in one scan whose body steps each group vmapped on its own; the carry stays split
  across steps, so the groups share no data and run side by side."""
  parts = _split_groups(groups, carry, inputs, keys)
  steps_first = lambda tree: jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)
  keys = [k for _, _, k in parts]

  def body(carries, xs):
    step_inputs, t = xs
    outs = [vstep(c, data, i, k, t) for c, i, k in zip(carries, step_inputs, keys)]
    return [o[0] for o in outs], [o[1] for o in outs]

  steps = jax.tree.leaves(inputs)[0].shape[1]
  carries, metrics = jax.lax.scan(
      body, [c for c, _, _ in parts], ([steps_first(i) for _, i, _ in parts], jnp.arange(steps)))
  return _concat_members(carries), steps_first(_concat_members(metrics, axis=1))
