"""The OpenBLAS custom call behind the benchmarks' -blas / -nodots rows (blas_call.py)."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/

from benchmarks import blas_call, report, training  # noqa: E402
from unlearn_jax import models  # noqa: E402

REASON = blas_call.unavailable_reason()
needs_call = pytest.mark.skipif(REASON is not None, reason=str(REASON))


@needs_call
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_batched_products_equal_numpy(trans_a, trans_b):
  rng = np.random.default_rng(0)
  m, k, n = 5, 7, 3
  a = rng.standard_normal((2, 3) + ((k, m) if trans_a else (m, k)), np.float32)
  b = rng.standard_normal((2, 3) + ((n, k) if trans_b else (k, n)), np.float32)
  op = lambda x, t: np.swapaxes(x, -1, -2) if t else x
  got = jax.jit(lambda a, b: blas_call.batched_matmul(a, b, trans_a, trans_b))(a, b)
  assert got.shape == (2, 3, m, n)
  np.testing.assert_allclose(got, np.matmul(op(a, trans_a), op(b, trans_b)), rtol=1e-5,
                             atol=1e-5)
  # Without compute every product is a zero fill, whatever the output buffer held.
  zeros = jax.jit(lambda a, b: blas_call.batched_matmul(a, b, trans_a, trans_b, compute=False))
  assert not np.any(np.asarray(zeros(a, b)))


@needs_call
def test_vmapped_gradients_equal_xla():
  """Both backward products go through the call too, batched over a member axis by vmap."""
  x = jax.random.normal(jax.random.key(0), (4, 6, 5))
  w = jax.random.normal(jax.random.key(1), (4, 5, 3))
  loss = lambda product: lambda x, w: jnp.sum(jnp.tanh(product(x, w)) ** 2)
  grads = jax.jit(jax.vmap(jax.grad(loss(blas_call.matmul()), (0, 1))))(x, w)
  want = jax.vmap(jax.grad(loss(jnp.matmul), (0, 1)))(x, w)
  for got, expected in zip(grads, want):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  no_grads = jax.jit(jax.vmap(jax.grad(loss(blas_call.matmul(compute=False)), (0, 1))))(x, w)
  assert not any(np.any(np.asarray(g)) for g in no_grads)


@needs_call
def test_mlp_with_the_call_trains_like_the_default():
  x = jax.random.normal(jax.random.key(0), (8, 40))
  y = jnp.arange(8) % 10
  default = models.get("mlp", 16, 10)
  blas = default.clone(dot_general=blas_call.dot_general())
  variables = default.init(jax.random.key(1), x)
  assert jax.tree.structure(blas.init(jax.random.key(1), x)) == jax.tree.structure(variables)

  def loss_and_grad(model):
    loss = lambda p: -jnp.mean(jax.nn.log_softmax(model.apply({"params": p}, x))[
        jnp.arange(8), y])
    return jax.jit(jax.value_and_grad(loss))(variables["params"])

  (got_loss, got), (want_loss, want) = loss_and_grad(blas), loss_and_grad(default)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
  for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@needs_call
def test_the_call_refuses_what_it_cannot_do():
  with pytest.raises(ValueError, match="float32 only.*bfloat16"):
    blas_call.batched_matmul(jnp.ones((2, 2), jnp.bfloat16), jnp.ones((2, 2), jnp.bfloat16))
  dot = blas_call.dot_general()
  with pytest.raises(ValueError, match="Dense products only"):
    dot(jnp.ones((2, 3)), jnp.ones((3, 2)), (((1,), (1,)), ((), ())))
  with pytest.raises(ValueError, match="Dense products only"):
    dot(jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5)), (((2,), (1,)), ((0,), (0,))))


def test_product_variants_are_told_from_strategies():
  assert report.products_variant("vmap-scan-c2-blas") == ("vmap-scan-c2", "blas")
  assert report.products_variant("auto-nodots") == ("auto", "nodots")
  assert report.products_variant("vmap-scan-fused") == ("vmap-scan-fused", None)
  assert report.products_variant("blas") == ("blas", None)
  assert report.products_variant("dots-blas") == ("dots-blas", None)
  assert all(map(report.is_reference, ["vmap-scan-c2-blas", "loop-host-nodots", "dots-blas"]))
  assert not any(map(report.is_reference, ["vmap-scan-c2", "auto", "vmap-scan-fused"]))


def test_product_rows_need_a_model_with_a_dot_general():
  cnn = training.Setup(None, None, None, None, None, models.get("cnn", 2, 10), None)
  with pytest.raises(ValueError, match="'-blas' rows.*dot_general field.*CNN has none"):
    training.products_step(cnn, "blas")
