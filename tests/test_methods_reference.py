"""Unlearning updates against independent slow implementations (plain per-step SGD written out
here), and the invariants of the methods that choose layers: CF-k, EU-k, weight negation.

Every run uses one batch per pass (the retain pass is one batch of 32, the forget pass one batch
of the whole forget subset), so a batch's mean gradient does not depend on its order and the
reference needs no data pipeline.
"""
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import methods, models
from unlearn_jax.methods import ForgetTask, MemberInputs, RunSettings
from unlearn_jax.train.batches import fold_in_members, member_batches
from unlearn_jax.train.losses import cross_entropy

from method_support import BATCH, CNN_STRATEGY, member

LR, WD, MOMENTUM = 0.05, 5e-4, 0.9
MLP_LAYERS = ("Dense_0", "Dense_1", "Dense_2")


def _ce_grad(s, params, idx, labels=None):
  """Gradient of the mean CE of the MLP (no BatchNorm) on examples `idx`."""
  y = s.d["y"][idx] if labels is None else labels
  return jax.grad(lambda q: cross_entropy(s.model.apply({"params": q}, s.d["x"][idx]), y))(params)


class _SGD:
  """PyTorch's SGD with momentum and weight decay; `trainable` (top-level names) or all."""

  def __init__(self, params, trainable=None):
    self.params, self.buf = params, None
    self.trainable = set(params) if trainable is None else set(trainable)

  def step(self, grads):
    d = {n: jax.tree.map(lambda g, p: g + WD * p, grads[n], self.params[n])
         for n in self.trainable}
    self.buf = d if self.buf is None else {
        n: jax.tree.map(lambda b, x: MOMENTUM * b + x, self.buf[n], d[n]) for n in d}
    self.params = {n: (jax.tree.map(lambda p, b: p - LR * b, v, self.buf[n])
                       if n in self.trainable else v) for n, v in self.params.items()}


def _assert_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _run(s, name, hp, epochs, forget=None, init_variables=None):
  forget = s.forget if forget is None else forget
  out, _ = methods.unlearn(
      name, s.model, s.orig, ForgetTask(s.d, s.retain[:BATCH], forget),
      MemberInputs(s.keys, {"learning_rate": LR, "weight_decay": WD, "momentum": MOMENTUM,
                            **hp}, s.mask, init_variables),
      RunSettings(epochs=epochs, batch_size=BATCH, forget_batch_size=len(forget)))
  return out


def test_finetune_equals_plain_sgd_on_the_retain_set(setup):
  s = setup
  out = _run(s, "finetune", {}, epochs=3)
  for i in range(2):
    sgd = _SGD(member(s.orig.params, i))
    for _ in range(3):
      sgd.step(_ce_grad(s, sgd.params, s.retain[:BATCH]))
    _assert_close(sgd.params, member(out.params, i))


def _random_labels(s, epoch, forget):
  """The forget pass's batch and labels, as documented: phase key fold_in(fold_in(key, 1 +
  phase), epoch); step keys fold_in(fold_in(phase key, 2), t); labels randint(fold_in(step key,
  10), ...); batches from the phase key's stream 0 (train.batches)."""
  pkeys = fold_in_members(fold_in_members(s.keys, 1), epoch)
  batch = member_batches(fold_in_members(pkeys, 0), forget, len(forget), 1)[:, 0]
  step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 2), 0))(pkeys)
  labels = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 10), (len(forget),), 0,
                                                 4))(step_keys)
  return np.asarray(batch), labels


def test_random_labels_equals_random_label_ce_then_retain_ce(setup):
  s = setup
  forget = s.forget[:8]
  out = _run(s, "random_labels", {}, epochs=2, forget=forget)
  for i in range(2):
    sgd = _SGD(member(s.orig.params, i))   # one momentum buffer through both passes
    for epoch in range(2):
      batch, labels = _random_labels(s, epoch, forget)
      sgd.step(_ce_grad(s, sgd.params, batch[i], labels[i]))
      sgd.step(_ce_grad(s, sgd.params, s.retain[:BATCH]))
    _assert_close(sgd.params, member(out.params, i))
  # The labels are not the true ones (else this would be fine-tuning on the forget set).
  _, labels = _random_labels(s, 0, forget)
  assert (np.asarray(labels) != np.asarray(s.d["y"][forget])[None]).mean() > 0.3


def test_cf_k_trains_only_each_members_last_k_layers(setup):
  s = setup
  out = _run(s, "cf_k", {"last_layers": jnp.array([1.0, 2.0])}, epochs=2)
  for i, k in enumerate((1, 2)):
    sgd = _SGD(member(s.orig.params, i), trainable=MLP_LAYERS[-k:])
    for _ in range(2):
      sgd.step(_ce_grad(s, sgd.params, s.retain[:BATCH]))
    mine = member(out.params, i)
    _assert_close(sgd.params, mine)
    for name in MLP_LAYERS[:-k]:
      for a, b in zip(jax.tree.leaves(mine[name]), jax.tree.leaves(member(s.orig.params, i)[name])):
        np.testing.assert_array_equal(a, b)


def test_eu_k_starts_from_fresh_last_layers_and_trains_them_on_the_retain_set(setup):
  s = setup
  frozen = _run(s, "eu_k", {"last_layers": 2.0, "learning_rate": 0.0}, epochs=1,
                init_variables=s.init)
  for i in range(2):
    mine, orig, fresh = (member(t.params, i) for t in (frozen, s.orig, s.init))
    for name in MLP_LAYERS:
      expected = orig[name] if name == "Dense_0" else fresh[name]
      for a, b in zip(jax.tree.leaves(mine[name]), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)
  out = _run(s, "eu_k", {"last_layers": 1.0}, epochs=2, init_variables=s.init)
  for i in range(2):
    start = {**member(s.orig.params, i), "Dense_2": member(s.init.params, i)["Dense_2"]}
    sgd = _SGD(start, trainable=("Dense_2",))
    for _ in range(2):
      sgd.step(_ce_grad(s, sgd.params, s.retain[:BATCH]))
    _assert_close(sgd.params, member(out.params, i))


def test_weight_negation_negates_the_chosen_layer_then_fine_tunes(setup):
  s = setup
  negated = _run(s, "weight_negation", {"negated_layer": jnp.array([0.0, 1.0]),
                                        "learning_rate": 0.0}, epochs=1)
  for i, j in enumerate((0, 1)):
    for name in MLP_LAYERS:
      sign = -1.0 if name == MLP_LAYERS[j] else 1.0
      for a, b in zip(jax.tree.leaves(member(negated.params, i)[name]),
                      jax.tree.leaves(member(s.orig.params, i)[name])):
        np.testing.assert_array_equal(a, sign * b)
  out = _run(s, "weight_negation", {}, epochs=2)
  for i in range(2):
    start = member(s.orig.params, i)
    sgd = _SGD({**start, "Dense_0": jax.tree.map(jnp.negative, start["Dense_0"])})
    for _ in range(2):
      sgd.step(_ce_grad(s, sgd.params, s.retain[:BATCH]))
    _assert_close(sgd.params, member(out.params, i))


def test_cf_k_on_a_batchnorm_cnn_leaves_earlier_layers_and_their_statistics_bitwise(cnn_setup):
  s = cnn_setup
  out, _ = methods.unlearn("cf_k", s.model, s.orig, s.task,
                           MemberInputs(s.keys, {"last_layers": 2.0}, s.mask),
                           RunSettings(epochs=1, batch_size=BATCH, strategy=CNN_STRATEGY))
  frozen = [f"{kind}_{i}" for i in range(3) for kind in ("Conv", "BatchNorm")]
  for collection in ("params", "batch_stats"):
    before, after = getattr(s.orig, collection), getattr(out.variables, collection)
    for name in before:
      same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[name]),
                                                      jax.tree.leaves(after[name])))
      assert same == (name in frozen), (collection, name)


def test_layer_choices_out_of_range_and_missing_fresh_layers_raise(setup):
  s = setup
  with pytest.raises(ValueError, match=r"last_layers=4 is not a layer count.*1\.\.3"):
    _run(s, "cf_k", {"last_layers": 4.0}, epochs=1)
  with pytest.raises(ValueError, match=r"last_layers=1.5"):
    _run(s, "cf_k", {"last_layers": 1.5}, epochs=1)
  with pytest.raises(ValueError, match=r"negated_layer=3 .*0\.\.2"):
    _run(s, "weight_negation", {"negated_layer": 3.0}, epochs=1)
  with pytest.raises(ValueError, match="eu_k.*needs init_variables"):
    _run(s, "eu_k", {}, epochs=1)


def test_layer_groups_join_batchnorm_to_the_layer_it_normalises():
  x = jnp.zeros((1, 12))
  groups = models.layers.layer_groups(models.get("mlp", 4, 3), x)
  assert groups == (("Dense_0",), ("Dense_1",), ("Dense_2",))
  cnn = models.layers.layer_groups(models.get("cnn", 2, 3), x)
  assert cnn == tuple((f"Conv_{i}", f"BatchNorm_{i}") for i in range(4)) + (("Dense_0",),)
  resnet = models.layers.layer_groups(models.get("preact_resnet18", 2, 3),
                                      jnp.zeros((1, 8, 8, 3), jnp.uint8))
  assert resnet[0] == ("Conv_0",) and resnet[-1] == ("Dense_0",) and len(resnet) == 10


def test_fanchuan_equals_three_separate_sgds_over_its_phases(setup):
  """Epoch 0: the uniform pass, the contrastive pass, the retain pass; epoch 1 without the
  uniform pass. Each phase steps its own SGD (own momentum buffer, own weight decay)."""
  s = setup
  forget, retain = s.forget[:8], s.retain[:BATCH]
  hp = {"uniform_lr": 0.05, "contrast_lr": 0.02, "retain_lr": 0.03, "momentum": MOMENTUM,
        "retain_weight_decay": 0.01, "temperature": 1.15, "uniform_epochs": 1.0}
  out, metrics = methods.unlearn(
      "fanchuan", s.model, s.orig, ForgetTask(s.d, retain, forget),
      MemberInputs(s.keys, hp, s.mask),
      RunSettings(epochs=2, batch_size=BATCH, forget_batch_size=len(forget)))
  logits = lambda q, idx: s.model.apply({"params": q}, s.d["x"][idx])

  def uniform_kl(q):   # sum_c (1/C) (log(1/C) - log p_c), batch mean
    log_p = jax.nn.log_softmax(logits(q, forget))
    return jnp.mean(jnp.sum((np.log(0.25) - log_p) / 4.0, axis=-1))

  def contrast(q, z_r):
    sims = logits(q, forget) @ z_r.T / 1.15
    return -jnp.mean(jax.nn.log_softmax(sims, axis=-1))

  ce = lambda q: cross_entropy(logits(q, retain), s.d["y"][retain])
  for i in range(2):
    p = member(s.orig.params, i)
    buf = {}

    def step(p, term, g, lr, wd=0.0):
      d = jax.tree.map(lambda g, x: g + wd * x, g, p)
      buf[term] = d if term not in buf else jax.tree.map(lambda b, x: MOMENTUM * b + x,
                                                         buf[term], d)
      return jax.tree.map(lambda x, b: x - lr * b, p, buf[term])

    for epoch in range(2):
      if epoch == 0:
        p = step(p, "uniform", jax.grad(uniform_kl)(p), 0.05)
      z_r = jax.lax.stop_gradient(logits(p, retain))
      p = step(p, "contrast", jax.grad(contrast)(p, z_r), 0.02)
      p = step(p, "retain", jax.grad(ce)(p), 0.03, wd=0.01)
    _assert_close(p, member(out.params, i))
  assert set(metrics) == {"uniform/forget_uniform_kl", "contrast/forget_contrast",
                          "retain/retain_ce"}


def test_minnorm_og_step_is_the_minimum_norm_shrink_orthogonal_to_the_output_gradients(setup):
  """With the AdamW step off (learning rate 0) each step is theta -= c_t * P(theta), P onto the
  orthogonal complement of the retain examples' largest-logit gradients, checked against a
  float64 least-squares projection; on originals that do not interpolate the retain set (so
  the loss gradients do not vanish and orthogonality is not trivial)."""
  s = setup
  retain = s.retain[:8]   # one batch: every retain example constrains the step
  hp = {"learning_rate": 0.0, "shrink": 0.3, "shrink_decay": 0.5}
  out, _ = methods.unlearn(
      "minnorm_og", s.model, s.orig, ForgetTask(s.d, retain, s.forget),
      MemberInputs(s.keys, hp, s.mask),
      RunSettings(epochs=2, batch_size=len(retain), forget_batch_size=len(s.forget)))
  for i in range(2):
    params = member(s.orig.params, i)
    z = s.model.apply({"params": params}, s.d["x"][s.retain])
    assert float(jnp.mean(jnp.argmax(z, -1) != s.d["y"][s.retain])) > 0.0   # not interpolating
    theta, unravel = jax.flatten_util.ravel_pytree(params)
    active = np.asarray(jax.flatten_util.ravel_pytree(member(s.mask, i))[0]) > 0
    theta = np.asarray(theta, np.float64)
    for c in (0.3, 0.15):
      top = lambda v, x: jnp.max(s.model.apply({"params": unravel(v)}, x[None]))
      g = np.asarray(jax.vmap(jax.grad(top), in_axes=(None, 0))(
          jnp.asarray(theta, jnp.float32), s.d["x"][retain]), np.float64)   # (m, d)
      assert np.linalg.cond(g) < 1e2   # well inside the span that float32 resolves
      coef, *_ = np.linalg.lstsq(g.T, theta, rcond=None)
      step = -c * (theta - g.T @ coef)
      assert np.abs(g @ step).max() < 1e-6 * np.abs(g).max() * np.abs(step).max() * len(theta)
      assert not np.any(step[~active])   # padding stays zero
      theta = theta + step
    mine = np.asarray(jax.flatten_util.ravel_pytree(member(out.params, i))[0], np.float64)
    np.testing.assert_allclose(mine, theta, rtol=1e-4, atol=1e-5)
