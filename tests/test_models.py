"""Model registry, parameter counts per width, and zero-padded width equivalence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import models, train


def _count(name, width, x, **kw):
  m = models.get(name, width=width, num_classes=10, **kw)
  return models.num_params(jax.eval_shape(lambda: m.init(jax.random.key(0), x)))


def _resnet_formula(k, in_ch=3, classes=10):
  """Hand count of a CIFAR pre-activation ResNet-18 at Nakkiran width k."""
  total, prev = 9 * in_ch * k, k
  for i, c in enumerate((k, 2 * k, 4 * k, 8 * k)):
    for j in range(2):
      total += 2 * prev + 9 * prev * c + 2 * c + 9 * c * c
      if prev != c or (i > 0 and j == 0):
        total += prev * c
      prev = c
  return total + prev * classes + classes


def test_parameter_counts():
  images = jnp.zeros((1, 32, 32, 3), jnp.uint8)
  assert _count("preact_resnet18", 64, images) == 11_171_146
  for k in (1, 4, 16):
    assert _count("preact_resnet18", k, images) == _resnet_formula(k)
  assert _count("preact_resnet18_scrub", 1.0, images) == 11_171_146
  signals = jnp.zeros((1, 40))
  for w in (4, 100):
    assert _count("mlp", w, signals) == 40 * w + w + w * w + w + 10 * w + 10
  k = 3
  convs = 3 * 1 * k + 3 * k * 2 * k + 3 * 2 * k * 4 * k + 3 * 4 * k * 8 * k
  assert _count("cnn", k, signals) == convs + 2 * (k + 2 * k + 4 * k + 8 * k) + 8 * k * 10 + 10


def test_registry_errors():
  with pytest.raises(ValueError, match="Unknown model 'vit'.*mlp"):
    models.get("vit", width=4, num_classes=10)
  with pytest.raises(ValueError, match="width must be positive, got 0"):
    models.get("mlp", width=0, num_classes=10)
  with pytest.raises(ValueError, match=r"model 'mlp' needs an integer width, got 2.5; fractional "
                     r"widths p are only meaningful for 'preact_resnet18_scrub'"):
    models.get("mlp", width=2.5, num_classes=10)
  for name in ("cnn", "preact_resnet18"):
    with pytest.raises(ValueError, match=f"model '{name}' needs an integer width, got 0.5"):
      models.get(name, width=0.5, num_classes=10)
  with pytest.raises(ValueError, match="model width must be a number, got 'a'"):
    models.get("mlp", width="a", num_classes=10)
  assert models.get("mlp", width=8.0, num_classes=10).width == 8  # integral floats are fine
  assert models.get("preact_resnet18_scrub", width=0.25, num_classes=10).width == 0.25
  with pytest.raises(ValueError, match="empty stage"):
    jax.eval_shape(lambda: models.get("preact_resnet18_scrub", 0.001, 10).init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 3))))


SIGNALS = jnp.asarray(np.random.default_rng(1).normal(size=(6, 16)), jnp.float32)
IMAGES = jnp.asarray(np.random.default_rng(2).integers(0, 255, (6, 8, 8, 3)), jnp.uint8)
CASES = [
    ("mlp", 3, 8, jnp.asarray(np.random.default_rng(0).normal(size=(6, 12)), jnp.float32), {}),
    ("cnn", 2, 3, SIGNALS, {"formulation": "shifted"}),
    ("cnn", 2, 3, SIGNALS, {"formulation": "flax"}),
    ("cnn", 1, 2, IMAGES, {"formulation": "shifted"}),
    ("cnn", 1, 2, IMAGES, {"formulation": "flax"}),
    ("preact_resnet18", 1, 2,
     jnp.asarray(np.random.default_rng(3).integers(0, 255, (6, 8, 8, 3)), jnp.uint8), {}),
]


@pytest.mark.parametrize("shape", [(8, 40), (8, 7), (4, 12, 12, 3), (4, 7, 9, 2)])
def test_shifted_cnn_is_the_flax_cnn(shape):
  """Same parameter tree and initialisation; same logits, BatchNorm statistics and gradients
  (float rounding apart), on signals and images, even and odd lengths (the pooling drops the
  last odd position as a 'VALID' reduce-window does)."""
  x = jax.random.normal(jax.random.key(0), shape)
  y = jnp.arange(shape[0]) % 10
  out = {}
  for formulation in ("flax", "shifted"):
    model = models.get("cnn", 4, 10, formulation=formulation)
    v = model.init(jax.random.key(1), x)

    def loss(params, model=model, v=v):
      logits, updates = model.apply({**v, "params": params}, x, train=True,
                                    mutable=["batch_stats"])
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y]), (logits, updates)

    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(v["params"])
    out[formulation] = (v, aux, grads, model.apply(v, x))
  (v_f, aux_f, g_f, eval_f), (v_s, aux_s, g_s, eval_s) = out["flax"], out["shifted"]
  assert jax.tree.structure(v_f) == jax.tree.structure(v_s)
  for a, b in zip(jax.tree.leaves(v_f), jax.tree.leaves(v_s)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves((aux_f, eval_f)), jax.tree.leaves((aux_s, eval_s))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_s)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(a)).max() > 0


def test_cnn_formulation_rule_and_errors():
  assert models.cnn_formulation("auto", "cpu") == "shifted"
  assert models.cnn_formulation("auto", "gpu") == "flax"
  assert models.resolved_kwargs("cnn", {})["formulation"] == models.cnn_formulation()
  assert models.resolved_kwargs("mlp", {"depth": 3}) == {"depth": 3}
  with pytest.raises(ValueError, match=r"Unknown CNN formulation 'winograd'; allowed: \['flax', "
                     r"'shifted'\]"):
    models.get("cnn", 4, 10, formulation="winograd")


@pytest.mark.parametrize("name, narrow_w, wide_w, x, kw", CASES)
def test_padded_network_computes_the_same_function(name, narrow_w, wide_w, x, kw):
  narrow = models.get(name, width=narrow_w, num_classes=5, **kw)
  wide = models.get(name, width=wide_w, num_classes=5, **kw)
  v_narrow = narrow.init(jax.random.key(0), x)
  v_wide = models.pad_variables(v_narrow, jax.eval_shape(lambda: wide.init(jax.random.key(0), x)))
  for bn_train in (False, True):
    a, bs_a = train.apply_model(narrow, *train.Variables.from_flax(v_narrow), x, bn_train)
    b, bs_b = train.apply_model(wide, *train.Variables.from_flax(v_wide), x, bn_train)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for sa, sb in zip(jax.tree.leaves(bs_a), jax.tree.leaves(models.unpad_variables(bs_b, bs_a))):
      np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name, narrow_w, wide_w, x, kw", CASES)
def test_padded_network_follows_the_same_trajectory(name, narrow_w, wide_w, x, kw, optimizer):
  y = jnp.arange(len(x)) % 5
  data = {"x": x, "y": y}
  factory = train.make_optimizer(optimizer, "cosine", total_steps=4)
  tx = factory(learning_rate=0.05, weight_decay=5e-3)
  narrow = models.get(name, width=narrow_w, num_classes=5, **kw)
  wide = models.get(name, width=wide_w, num_classes=5, **kw)
  v_narrow = narrow.init(jax.random.key(0), x)
  wide_shapes = jax.eval_shape(lambda: wide.init(jax.random.key(0), x))
  v_wide = models.pad_variables(v_narrow, wide_shapes)
  mask = models.active_mask(v_narrow["params"], wide_shapes["params"])
  s_narrow = train.create_train_state(narrow, v_narrow, tx)
  s_wide = train.create_train_state(wide, v_wide, tx)
  step_n = jax.jit(train.make_train_step(narrow, tx, augment=x.ndim == 4))
  step_w = jax.jit(train.make_train_step(wide, tx, augment=x.ndim == 4))
  batch = jnp.arange(len(x))
  for t in range(4):
    key = jax.random.key(t)
    s_narrow, m_n = step_n(s_narrow, data, batch, key)
    s_wide, m_w = step_w(s_wide, data, batch, key)
    np.testing.assert_allclose(m_n["loss"], m_w["loss"], rtol=1e-5)
  back = models.unpad_variables(s_wide.params, s_narrow.params)
  for a, b in zip(jax.tree.leaves(s_narrow.params), jax.tree.leaves(back)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  # The padded coordinates never moved away from zero.
  for p, m in zip(jax.tree.leaves(s_wide.params), jax.tree.leaves(mask)):
    assert np.all(np.asarray(p)[np.asarray(m) == 0] == 0)
