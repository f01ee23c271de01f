"""Tests for evaluation.decision_regions with a tiny member-stacked linear model (S=2)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax.evaluation import decision_regions as dr

SHAPE = (4, 4, 3)
NUM_CLASSES = 5


def linear_logits(variables, x):
  return x.reshape(x.shape[0], -1) @ variables["w"] + variables["b"]


@pytest.fixture(scope="module")
def models():
  key = jax.random.key(0)
  w = jax.random.normal(key, (2, int(np.prod(SHAPE)), NUM_CLASSES))  # (S, D, C)
  b = jax.random.normal(jax.random.fold_in(key, 1), (2, NUM_CLASSES))
  original = {"w": w, "b": b}
  # A derangement of the class axis: every predicted label changes, no model quality changes.
  perm = jnp.roll(jnp.arange(NUM_CLASSES), 1)
  permuted = {"w": w[..., perm], "b": b[..., perm]}
  return original, permuted


@pytest.fixture(scope="module")
def anchors():
  return np.random.default_rng(0).normal(size=(9, *SHAPE)).astype(np.float32)


def test_plane_basis_reconstructs_anchors(anchors):
  x1, x2, x3 = anchors[:3]
  origin, u, v, anchor_ab = dr.plane_basis(x1, x2, x3)
  assert u.shape == SHAPE and anchor_ab.shape == (3, 2)
  np.testing.assert_allclose(jnp.vdot(u, u), 1.0, atol=1e-5)
  np.testing.assert_allclose(jnp.vdot(v, v), 1.0, atol=1e-5)
  np.testing.assert_allclose(jnp.vdot(u, v), 0.0, atol=1e-5)
  np.testing.assert_allclose(anchor_ab[1], [np.linalg.norm(x2 - x1), 0.0], rtol=1e-5)
  assert anchor_ab[2, 1] > 0
  for k, x in enumerate((x1, x2, x3)):
    rebuilt = origin + anchor_ab[k, 0] * u + anchor_ab[k, 1] * v
    np.testing.assert_allclose(rebuilt, x, atol=1e-4)


def test_plane_grid_covers_anchors_with_margin(anchors):
  x1, x2, x3 = anchors[:3]
  resolution = 7
  points, a_values, b_values = dr.plane_grid(x1, x2, x3, resolution, margin=0.1)
  assert points.shape == (resolution * resolution, *SHAPE)
  origin, u, v, anchor_ab = dr.plane_basis(x1, x2, x3)
  for axis, values in ((0, a_values), (1, b_values)):
    low, high = float(anchor_ab[:, axis].min()), float(anchor_ab[:, axis].max())
    np.testing.assert_allclose([values[0], values[-1]],
                               [low - 0.1 * (high - low), high + 0.1 * (high - low)], rtol=1e-5)
  i, j = 5, 2  # Point i * R + j sits at (a_j, b_i).
  np.testing.assert_allclose(points[i * resolution + j],
                             origin + a_values[j] * u + b_values[i] * v, atol=1e-5)
  batched, a_batched, _ = dr.plane_grids(anchors[0:6:3], anchors[1:6:3], anchors[2:6:3],
                                         resolution)
  np.testing.assert_allclose(batched[0], points, atol=1e-5)
  np.testing.assert_allclose(a_batched[0], a_values, atol=1e-5)


def test_plane_labels_match_direct_evaluation_and_changed_fraction(models, anchors):
  original, permuted = models
  x1s, x2s, x3s = anchors[0:9:3], anchors[1:9:3], anchors[2:9:3]  # T = 3 planes.
  resolution = 8
  # batch_size 50 does not divide 3 * 64 points: exercises the padded last chunk.
  labels = dr.plane_labels(linear_logits, original, x1s, x2s, x3s, resolution, batch_size=50)
  assert labels.shape == (2, 3, resolution * resolution)
  points = np.asarray(dr.plane_grids(x1s, x2s, x3s, resolution)[0]).reshape(3 * 64, -1)
  for member in range(2):
    direct = (points @ np.asarray(original["w"][member]) + np.asarray(original["b"][member]))
    np.testing.assert_array_equal(labels[member].reshape(-1), direct.argmax(-1))
  same = dr.plane_changed_fraction(linear_logits, original, original, x1s, x2s, x3s, resolution,
                                   batch_size=50)
  flipped = dr.plane_changed_fraction(linear_logits, original, permuted, x1s, x2s, x3s,
                                      resolution, batch_size=50)
  np.testing.assert_array_equal(same, np.zeros((2, 3)))
  np.testing.assert_array_equal(flipped, np.ones((2, 3)))


def test_neighbourhoods(models, anchors):
  original, permuted = models
  key = jax.random.key(3)
  radii = (0.5, 2.0)
  points = dr.neighbourhood_points(anchors[:5], radii, 3, key)
  assert points.shape == (5, 2, 3, *SHAPE)
  distances = np.linalg.norm((points - anchors[:5, None, None]).reshape(5, 2, 3, -1), axis=-1)
  np.testing.assert_allclose(distances, np.broadcast_to([[0.5], [2.0]], (5, 2, 3)), rtol=1e-5)
  # batch_size 12 -> 2 anchors per chunk over 5 anchors: padded last chunk.
  labels = dr.neighbourhood_labels(linear_logits, original, anchors[:5], radii, 3, key,
                                   batch_size=12)
  direct = dr.predict_labels(linear_logits, original, points.reshape(-1, *SHAPE), batch_size=7)
  np.testing.assert_array_equal(labels.reshape(2, -1), direct)
  np.testing.assert_array_equal(
      dr.neighbourhood_changed_fraction(linear_logits, original, permuted, anchors[:5], radii, 3,
                                        key, batch_size=12), np.ones((2, 5, 2)))
  np.testing.assert_array_equal(
      dr.neighbourhood_changed_fraction(linear_logits, original, original, anchors[:5], radii, 3,
                                        key, batch_size=12), np.zeros((2, 5, 2)))
  # One reference model (S=1) broadcasts against every member.
  broadcast = dr.changed_fraction(labels[:1], labels)
  assert broadcast.shape == (2, 5, 2)
  np.testing.assert_array_equal(broadcast[0], 0.0)


def test_triplets_are_valid_and_deterministic():
  forget = np.arange(10)
  retain = np.arange(5, 40)  # Overlaps the forget pool on 5..9.
  key = jax.random.key(7)
  trip = np.asarray(dr.triplets(forget, retain, 8, key))
  assert trip.shape == (8, 3)
  assert len(np.unique(trip[:, 0])) == 8 and np.all(np.isin(trip[:, 0], forget))
  assert np.all(np.isin(trip[:, 1:], retain))
  assert np.all(trip[:, 1] != trip[:, 2])
  assert np.all(trip[:, 1:] != trip[:, :1])
  np.testing.assert_array_equal(trip, dr.triplets(forget, retain, 8, key))
  many = np.asarray(dr.triplets(retain, retain, 100, jax.random.key(8)))
  assert np.all(many[:, 1:] != many[:, :1]) and np.all(many[:, 1] != many[:, 2])
