"""How unlearning changes decision regions near the forget examples and elsewhere.

Planes (Somepalli et al. 2022, "Can neural nets learn the same model twice?", code
somepago/dbViz): three inputs x1, x2, x3 span a 2-D plane with origin x1, first axis
u = (x2 - x1) / |x2 - x1| and second axis v = the part of x3 - x1 orthogonal to u, normalised. The
anchors sit at plane coordinates (0, 0), (|x2 - x1|, 0) and ((x3 - x1).u, (x3 - x1).v). A square
R x R grid of points x1 + a u + b v covers the anchors' coordinate box plus a margin (10% of the
box on each side). Each model labels the grid; the fraction of grid points whose label differs
between the original and the unlearned model measures how much unlearning moved the decision
regions in that plane. Planes anchored at a forget example (x1 in the forget set) measure local
change; planes through retain/test examples only measure collateral change.

Random-direction neighbourhoods are a cheaper complement: M points at distance r from an anchor
along random unit directions (same directions at every radius, so radii are nested), labelled
before and after.

Conventions. `logits_fn(variables, x) -> logits` is a pure function of ONE model applied to a batch
`x` of shape `(B, *input_shape)`; `variables` passed here are member-stacked (every leaf has a
leading member axis S), and every function vmaps over members. Inputs must already be in the space
`logits_fn` consumes (float, normalised as the model expects), since planes extend beyond the data
range. Grid and neighbourhood points are generated on the device chunk by chunk inside one jitted
function, so memory is bounded by `batch_size` points x S members whatever the number of planes.
A Python loop drives the chunks rather than `lax.map`/`scan`, because convolutions inside a scan
are much slower on XLA:CPU; each chunk has the same shape (the last one is padded), so the loop
compiles once per `logits_fn` object -- pass the same function object to reuse the compilation.
Labels come back to the host as numpy int32, shaped so `changed_fraction` reduces the last axis.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import compile_cache

LogitsFn = Callable[[Any, jax.Array], jax.Array]


# ---------------------------------------------------------------------------------------------
# Plane geometry (single triplet; vmap for many).


def plane_basis(x1: jax.Array, x2: jax.Array, x3: jax.Array):
  """Origin, orthonormal axes and anchor coordinates of the plane through three inputs.

  Args:
    x1, x2, x3: inputs of identical shape (any shape, e.g. `(H, W, C)` or `(L,)`); x1 is the
      origin. They must be distinct and not collinear.

  Returns:
    `(origin, u, v, anchor_ab)`: origin = x1 and unit vectors u, v in the input's shape (float32),
    and `anchor_ab` `(3, 2)` holding the (a, b) coordinates of x1, x2, x3, so that
    `x_k = origin + a_k u + b_k v`.
  """
  shape = jnp.shape(x1)
  x1, x2, x3 = (jnp.asarray(x, jnp.float32).reshape(-1) for x in (x1, x2, x3))
  d2 = x2 - x1
  d3 = x3 - x1
  norm2 = jnp.linalg.norm(d2)
  u = d2 / norm2
  a3 = jnp.dot(d3, u)
  w = d3 - a3 * u
  # A second Gram-Schmidt pass removes the float32 residue along u that one pass leaves on
  # high-dimensional inputs, so anchors reconstruct to near machine precision.
  w = w - jnp.dot(w, u) * u
  b3 = jnp.linalg.norm(w)
  v = w / b3
  zero = jnp.zeros_like(norm2)
  anchor_ab = jnp.stack([jnp.stack([zero, zero]), jnp.stack([norm2, zero]),
                         jnp.stack([a3, b3])])
  return x1.reshape(shape), u.reshape(shape), v.reshape(shape), anchor_ab


def plane_axes(anchor_ab: jax.Array, resolution: int, margin: float = 0.1):
  """Grid coordinates covering the anchors' box plus `margin` of its size on each side.

  Returns:
    `(a_values, b_values)`, each `(resolution,)`, increasing.
  """
  low = jnp.min(anchor_ab, axis=0)
  high = jnp.max(anchor_ab, axis=0)
  pad = margin * (high - low)
  a_values = jnp.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
  b_values = jnp.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
  return a_values, b_values


def plane_grid(x1: jax.Array, x2: jax.Array, x3: jax.Array, resolution: int,
               margin: float = 0.1):
  """All grid points of one plane.

  Args:
    x1, x2, x3: the anchors (see `plane_basis`).
    resolution: R, points per axis.
    margin: fraction of the anchors' coordinate range added on each side.

  Returns:
    `(points, a_values, b_values)`: points `(R * R, *x1.shape)` where point `i * R + j` is
    `x1 + a_values[j] u + b_values[i] v` (row i = b, column j = a, so `reshape(R, R)` is an image
    with b vertical), and the coordinate arrays `(R,)`.
  """
  origin, u, v, anchor_ab = plane_basis(x1, x2, x3)
  a_values, b_values = plane_axes(anchor_ab, resolution, margin)
  b_grid, a_grid = jnp.meshgrid(b_values, a_values, indexing="ij")
  points = _combine(origin, u, v, a_grid.reshape(-1), b_grid.reshape(-1))
  return points, a_values, b_values


def plane_grids(x1s: jax.Array, x2s: jax.Array, x3s: jax.Array, resolution: int,
                margin: float = 0.1):
  """`plane_grid` for T triplets at once: points `(T, R * R, ...)`, coordinates `(T, R)`.

  This materialises T * R^2 inputs; for many planes prefer `plane_labels`, which never does.
  """
  grid = functools.partial(plane_grid, resolution=resolution, margin=margin)
  return jax.vmap(grid)(x1s, x2s, x3s)


def _combine(origin, u, v, a, b):
  # Broadcast per-point coordinates (P,) against the input-shaped axes.
  expand = (slice(None),) + (None,) * origin.ndim
  return origin[None] + a[expand] * u[None] + b[expand] * v[None]


# ---------------------------------------------------------------------------------------------
# Sampling anchors and directions.


def triplets(anchor_idx_pool, other_pool, n: int, key: jax.Array) -> jax.Array:
  """Index triplets (x1, x2, x3) with x1 from one pool and x2, x3 from another.

  For planes through forget examples pass the forget indices as `anchor_idx_pool` and e.g. the
  retain (or test) indices as `other_pool`; for control planes pass retain/test indices as both.
  Both pools index the same input array (concatenate train and test inputs if they should mix).
  Anchors are distinct while `n` does not exceed the anchor pool (then drawn with replacement);
  x2 and x3 are distinct from each other and from x1.

  Args:
    anchor_idx_pool: indices x1 is drawn from.
    other_pool: indices x2 and x3 are drawn from (at least 3 unique values).
    n: number of triplets.
    key: a `jax.random.key`.

  Returns:
    `(n, 3)` int32 indices.
  """
  anchor_pool = jnp.asarray(np.unique(np.asarray(anchor_idx_pool)), jnp.int32)
  others = jnp.asarray(np.unique(np.asarray(other_pool)), jnp.int32)
  if len(others) < 3:
    raise ValueError("other_pool needs at least 3 distinct indices")
  anchor_key, other_key = jax.random.split(key)
  if n <= len(anchor_pool):
    anchors = jax.random.permutation(anchor_key, anchor_pool)[:n]
  else:
    anchors = jax.random.choice(anchor_key, anchor_pool, (n,), replace=True)

  def pick_pair(pair_key, anchor):
    # Zero weight on the anchor itself; choice without replacement keeps x2 != x3.
    weights = (others != anchor).astype(jnp.float32)
    return jax.random.choice(pair_key, others, (2,), replace=False, p=weights / weights.sum())

  pairs = jax.vmap(pick_pair)(jax.random.split(other_key, n), anchors)
  return jnp.concatenate([anchors[:, None], pairs], axis=1)


def random_unit_directions(key: jax.Array, num: int, shape: Sequence[int]) -> jax.Array:
  """`num` directions uniform on the unit sphere of inputs of `shape`: `(num, *shape)`."""
  directions = jax.random.normal(key, (num, *shape), jnp.float32)
  flat = directions.reshape(num, -1)
  flat = flat / jnp.linalg.norm(flat, axis=-1, keepdims=True)
  return flat.reshape(num, *shape)


def neighbourhood_points(anchors: jax.Array, radii: Sequence[float], num_directions: int,
                         key: jax.Array) -> jax.Array:
  """Points at distance r from each anchor along random directions: `(A, n_radii, M, ...)`.

  Anchor k uses the directions of `jax.random.fold_in(key, k)`, shared by all radii. This
  materialises everything; `neighbourhood_labels` generates the same points chunk by chunk.
  """
  anchors = jnp.asarray(anchors, jnp.float32)
  return _neighbourhood_chunk(anchors, jnp.asarray(radii, jnp.float32), num_directions, key,
                              jnp.arange(anchors.shape[0]))


def _neighbourhood_chunk(anchors, radii, num_directions, key, anchor_idx):
  shape = anchors.shape[1:]
  keys = jax.vmap(lambda index: jax.random.fold_in(key, index))(anchor_idx)
  directions = jax.vmap(lambda k: random_unit_directions(k, num_directions, shape))(keys)
  radii = radii.reshape((1, -1, 1) + (1,) * len(shape))
  return anchors[anchor_idx][:, None, None] + radii * directions[:, None]


# ---------------------------------------------------------------------------------------------
# Labelling with member-stacked models, in bounded chunks.


def _member_labels(logits_fn: LogitsFn, variables, points: jax.Array) -> jax.Array:
  # (S, B) labels: every member labels the same points.
  return jax.vmap(lambda member: jnp.argmax(logits_fn(member, points), axis=-1))(variables)


@compile_cache.jit(static_argnames=("logits_fn", "batch_size"))
def _points_chunk_labels(logits_fn, variables, points, start, batch_size):
  index = jnp.minimum(start + jnp.arange(batch_size), points.shape[0] - 1)
  return _member_labels(logits_fn, variables, points[index])


@compile_cache.jit(static_argnames=("logits_fn", "batch_size", "resolution"))
def _plane_chunk_labels(logits_fn, variables, origins, us, vs, a_values, b_values, start,
                        batch_size, resolution):
  # Flat point index k -> (triplet t, row i (b), column j (a)), clipped so the padded tail of the
  # last chunk recomputes a valid point instead of reading out of bounds.
  total = origins.shape[0] * resolution * resolution
  flat = jnp.minimum(start + jnp.arange(batch_size), total - 1)
  triplet, cell = jnp.divmod(flat, resolution * resolution)
  row, col = jnp.divmod(cell, resolution)
  expand = (slice(None),) + (None,) * (origins.ndim - 1)
  a = a_values[triplet, col][expand]
  b = b_values[triplet, row][expand]
  points = origins[triplet] + a * us[triplet] + b * vs[triplet]
  return _member_labels(logits_fn, variables, points)


@compile_cache.jit(static_argnames=("logits_fn", "num_directions", "anchors_per_chunk"))
def _neighbourhood_chunk_labels(logits_fn, variables, anchors, radii, key, start, num_directions,
                                anchors_per_chunk):
  anchor_idx = jnp.minimum(start + jnp.arange(anchors_per_chunk), anchors.shape[0] - 1)
  points = _neighbourhood_chunk(anchors, radii, num_directions, key, anchor_idx)
  labels = _member_labels(logits_fn, variables, points.reshape(-1, *anchors.shape[1:]))
  return labels.reshape(labels.shape[0], anchors_per_chunk, radii.shape[0], num_directions)


def _run_chunks(chunk_fn, total: int, chunk: int) -> np.ndarray:
  # Concatenate (S, chunk, ...) pieces along axis 1 and drop the padded tail.
  pieces = [np.asarray(chunk_fn(jnp.int32(start))) for start in range(0, total, chunk)]
  return np.concatenate(pieces, axis=1)[:, :total]


def predict_labels(logits_fn: LogitsFn, variables, points: jax.Array,
                   batch_size: int = 1024) -> np.ndarray:
  """Labels of given points under every member: `(P, ...) -> (S, P)` int32."""
  points = jnp.asarray(points, jnp.float32)
  batch_size = min(batch_size, points.shape[0])
  return _run_chunks(
      lambda start: _points_chunk_labels(logits_fn, variables, points, start, batch_size),
      points.shape[0], batch_size).astype(np.int32)


def plane_labels(logits_fn: LogitsFn, variables, x1s: jax.Array, x2s: jax.Array,
                 x3s: jax.Array, resolution: int, margin: float = 0.1,
                 batch_size: int = 1024) -> np.ndarray:
  """Labels of every plane's grid under every member, without materialising the grids.

  Args:
    logits_fn: single-model `(variables, x) -> logits`.
    variables: member-stacked variables (leading axis S on every leaf).
    x1s, x2s, x3s: `(T, *input_shape)` anchors, one plane per row (gather them with `triplets`).
    resolution: R, grid points per axis.
    margin: see `plane_grid`.
    batch_size: grid points per device chunk (memory ~ batch_size x S activations).

  Returns:
    `(S, T, R * R)` int32 labels, point order as in `plane_grid`.
  """
  origins, us, vs, anchor_ab = jax.vmap(plane_basis)(x1s, x2s, x3s)
  a_values, b_values = jax.vmap(lambda ab: plane_axes(ab, resolution, margin))(anchor_ab)
  num_planes = origins.shape[0]
  total = num_planes * resolution * resolution
  batch_size = min(batch_size, total)
  labels = _run_chunks(
      lambda start: _plane_chunk_labels(logits_fn, variables, origins, us, vs, a_values, b_values,
                                        start, batch_size, resolution),
      total, batch_size)
  return labels.reshape(labels.shape[0], num_planes, resolution * resolution).astype(np.int32)


def neighbourhood_labels(logits_fn: LogitsFn, variables, anchors: jax.Array,
                         radii: Sequence[float], num_directions: int, key: jax.Array,
                         batch_size: int = 1024) -> np.ndarray:
  """Labels of random-direction neighbourhood points under every member.

  Args:
    logits_fn, variables: as in `plane_labels`.
    anchors: `(A, *input_shape)` centres (e.g. the forget examples, or retain/test controls).
    radii: L2 distances in input units (choose them relative to typical inter-example distances
      of the normalised inputs).
    num_directions: M directions per anchor, shared by all radii.
    key: `jax.random.key`; the same key gives the same points, so labels of two models compare.
    batch_size: approximate points per chunk (rounded to whole anchors).

  Returns:
    `(S, A, n_radii, M)` int32 labels; the points are `neighbourhood_points(...)`.
  """
  anchors = jnp.asarray(anchors, jnp.float32)
  radii = jnp.asarray(radii, jnp.float32).reshape(-1)
  per_anchor = radii.shape[0] * num_directions
  anchors_per_chunk = int(min(anchors.shape[0], max(1, batch_size // per_anchor)))
  return _run_chunks(
      lambda start: _neighbourhood_chunk_labels(logits_fn, variables, anchors, radii, key, start,
                                                num_directions, anchors_per_chunk),
      anchors.shape[0], anchors_per_chunk).astype(np.int32)


def changed_fraction(labels_a, labels_b) -> np.ndarray:
  """Fraction of points whose label differs, averaged over the last axis.

  Shapes broadcast, e.g. `(1, T, P)` labels of one original model against `(S, T, P)` of S
  unlearned members.
  """
  return np.mean(np.asarray(labels_a) != np.asarray(labels_b), axis=-1)


def plane_changed_fraction(logits_fn: LogitsFn, variables_before, variables_after, x1s, x2s, x3s,
                           resolution: int, margin: float = 0.1,
                           batch_size: int = 1024) -> np.ndarray:
  """Per member and plane, the fraction of grid points relabelled: `(S, T)`.

  `variables_before` may hold one member (the original model) and is then compared with every
  member of `variables_after`.
  """
  before = plane_labels(logits_fn, variables_before, x1s, x2s, x3s, resolution, margin,
                        batch_size)
  after = plane_labels(logits_fn, variables_after, x1s, x2s, x3s, resolution, margin, batch_size)
  return changed_fraction(before, after)


def neighbourhood_changed_fraction(logits_fn: LogitsFn, variables_before, variables_after,
                                   anchors, radii: Sequence[float], num_directions: int,
                                   key: jax.Array, batch_size: int = 1024) -> np.ndarray:
  """Per member, anchor and radius, the fraction of the M points relabelled: `(S, A, n_radii)`."""
  before = neighbourhood_labels(logits_fn, variables_before, anchors, radii, num_directions, key,
                                batch_size)
  after = neighbourhood_labels(logits_fn, variables_after, anchors, radii, num_directions, key,
                               batch_size)
  return changed_fraction(before, after)
