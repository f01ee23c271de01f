"""Running unlearning methods on member-stacked originals: correctness, grids, padding, errors."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import methods, models, train
from unlearn_jax.methods import ForgetTask, MemberInputs, RunSettings
from unlearn_jax.train.losses import cross_entropy, kl_divergence

from method_support import BATCH, CNN_STRATEGY, member as _member


def _logits(s, params, idx):
  return train.predict_logits(s.model, params, s.orig.batch_stats, s.d["x"][idx])


def test_one_neggrad_plus_step_via_runner_equals_hand_computation(setup):
  s = setup
  lr, alpha, wd = 0.05, 0.8, 5e-4
  retain = s.retain[:BATCH]  # exactly one step; the forget batch is the whole forget set
  out, _ = methods.unlearn(
      "neggrad_plus", s.model, s.orig, ForgetTask(s.d, retain, s.forget),
      MemberInputs(s.keys, {"learning_rate": lr, "alpha": alpha, "weight_decay": wd}, s.mask),
      RunSettings(epochs=1, batch_size=BATCH, forget_batch_size=len(s.forget)))
  for i in range(2):
    p = _member(s.orig.params, i)
    ce = lambda q, idx: cross_entropy(s.model.apply({"params": q}, s.d["x"][idx]), s.d["y"][idx])
    g_r, g_f = jax.grad(ce)(p, retain), jax.grad(ce)(p, s.forget)
    expected = jax.tree.map(lambda q, r, f: q - lr * (alpha * r - (1 - alpha) * f + wd * q),
                            p, g_r, g_f)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(_member(out.params, i))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert out.step.tolist() == [1, 1]


def test_gradient_ascent_raises_the_forget_loss(setup):
  s = setup
  out, metrics = methods.unlearn(
      "gradient_ascent", s.model, s.orig, s.task,
      MemberInputs(s.keys, {"learning_rate": 0.05}, s.mask),
      RunSettings(epochs=3, batch_size=BATCH, forget_batch_size=10))
  y = s.d["y"][s.forget]
  before = [float(cross_entropy(z, y)) for z in _logits(s, s.orig.params, s.forget)]
  after = [float(cross_entropy(z, y)) for z in _logits(s, out.params, s.forget)]
  assert all(a > b + 0.05 for a, b in zip(after, before)), (before, after)
  assert metrics["forget/forget_ce"].shape == (2,)


def test_scrub_max_phase_raises_forget_kl_and_min_phase_lowers_retain_loss(setup):
  s = setup
  scrub = methods.get("scrub")

  def no_ascent_tx(learning_rate, alpha, gamma, weight_decay, momentum):
    return optax.chain(methods.combine_terms(forget_kl=0.0, retain_ce=gamma, retain_kl=alpha),
                       methods.sgd_with_wd(learning_rate, weight_decay, momentum))

  max_only = dataclasses.replace(scrub, name="scrub_max", phases=scrub.phases[:1])
  control = dataclasses.replace(max_only, name="scrub_control", tx=no_ascent_tx)
  min_only = dataclasses.replace(scrub, name="scrub_min", phases=scrub.phases[1:],
                                 uses_forget=False)
  hp = {"learning_rate": 0.05, "weight_decay": 5e-4, "msteps": 5.0, "alpha": 0.5, "gamma": 1.0}
  run = lambda m: methods.unlearn(m, s.model, s.orig, s.task, MemberInputs(s.keys, hp, s.mask),
                                  RunSettings(epochs=5, batch_size=BATCH,
                                              forget_batch_size=8))[0]
  teacher = _logits(s, s.orig.params, s.forget)

  def forget_kl(state):
    return np.array([float(kl_divergence(t, z, 4.0))
                     for t, z in zip(teacher, _logits(s, state.params, s.forget))])

  kl_max, kl_control = forget_kl(run(max_only)), forget_kl(run(control))
  # The student starts AT the teacher, where -KL has zero gradient: weight decay alone moves it a
  # little (the control); the max pass must amplify that departure by orders of magnitude.
  assert np.all(kl_max > 0.01) and np.all(kl_max > 100 * kl_control), (kl_max, kl_control)
  y = s.d["y"][s.retain]
  before = [float(cross_entropy(z, y)) for z in _logits(s, s.orig.params, s.retain)]
  after = [float(cross_entropy(z, y)) for z in _logits(s, run(min_only).params, s.retain)]
  assert all(a < b - 0.01 for a, b in zip(after, before)), (before, after)


def _find_masked_state(tree):
  hits = [x for x in jax.tree.leaves(tree, is_leaf=lambda t: isinstance(t, methods.MaskedHardState))
          if isinstance(x, methods.MaskedHardState)]
  assert len(hits) == 1
  return hits[0]


def test_salun_freezes_non_salient_weights_bitwise_and_selects_fraction_r_of_active(setup):
  s = setup
  fractions = np.array([0.3, 0.6], np.float32)
  out, _ = methods.unlearn(
      "salun", s.model, s.orig, s.task,
      MemberInputs(s.keys, {"salient_fraction": fractions, "learning_rate": 0.05,
                            "weight_decay": 5e-3, "momentum": 0.9}, s.mask),
      RunSettings(epochs=3, batch_size=BATCH, forget_batch_size=8))
  salient = _find_masked_state(out.opt_state).mask
  # Saliency at the original model: |grad of the forget CE| (20 examples: one batch).
  for i, expected in enumerate([27, 127]):  # int(0.3 * 92) (round: 28), int(0.6 * 212)
    p, act, sal = _member(s.orig.params, i), _member(s.mask, i), _member(salient, i)
    n_active = sum(int(a.sum()) for a in jax.tree.leaves(act))
    n_salient = sum(int(m.sum()) for m in jax.tree.leaves(sal))
    assert n_salient == int(float(str(fractions[i])) * n_active) == expected
    grad = jax.grad(lambda q: cross_entropy(s.model.apply({"params": q}, s.d["x"][s.forget]),
                                            s.d["y"][s.forget]))(p)
    g = np.concatenate([np.abs(np.ravel(x)) for x in jax.tree.leaves(grad)])
    m = np.concatenate([np.ravel(x) for x in jax.tree.leaves(sal)])
    a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(act)])
    assert not np.any(m[a == 0])
    assert g[m].min() >= g[(~m) & (a > 0)].max() * (1 - 1e-6)
    changed = 0
    for before, after, msk in zip(jax.tree.leaves(p), jax.tree.leaves(_member(out.params, i)),
                                  jax.tree.leaves(sal)):
      before, after, msk = np.asarray(before), np.asarray(after), np.asarray(msk)
      np.testing.assert_array_equal(after[~msk], before[~msk])  # bit-identical
      changed += int(np.sum(after[msk] != before[msk]))
    assert changed > 0.9 * n_salient


def test_ssd_dampens_exactly_the_selected_parameters_by_the_documented_factor(setup):
  s = setup
  alpha, lam = 1.0, 0.5
  out, metrics = methods.unlearn(
      "ssd", s.model, s.orig, s.task,
      MemberInputs(s.keys, {"selection_weighting": alpha, "dampening_constant": lam}, s.mask),
      RunSettings(batch_size=BATCH))
  full = np.concatenate([s.retain, s.forget])  # the reference's ConcatDataset(retain, forget)
  for i in range(2):
    p = _member(s.orig.params, i)
    ce = lambda q, idx: cross_entropy(s.model.apply({"params": q}, s.d["x"][idx]), s.d["y"][idx])

    def importance(idx):
      batches = [idx[j:j + BATCH] for j in range(0, len(idx), BATCH)]
      sq = [jax.tree.map(jnp.square, jax.grad(ce)(p, b)) for b in batches]
      return jax.tree.map(lambda *xs: sum(xs) / len(batches), *sq)

    f_imp, r_imp = importance(s.forget), importance(full)
    n_sel = 0
    for q, new, f, r, a in zip(*(jax.tree.leaves(t) for t in (
        p, _member(out.params, i), f_imp, r_imp, _member(s.mask, i)))):
      q, new, f, r, a = map(np.asarray, (q, new, f, r, a))
      sel = (f > alpha * r) & (a > 0)
      np.testing.assert_array_equal(new[~sel], q[~sel])
      factor = np.minimum(lam * r[sel] / f[sel], 1.0)
      np.testing.assert_allclose(new[sel], q[sel] * factor, rtol=1e-4, atol=1e-7)
      n_sel += int(sel.sum())
    assert n_sel > 0
    n_active = sum(int(a.sum()) for a in jax.tree.leaves(_member(s.mask, i)))
    np.testing.assert_allclose(metrics["selected_fraction"][i], n_sel / n_active, rtol=1e-3)


_COMPILES = []


def _on_event(event, duration, **kwargs):
  del duration, kwargs
  if event == "/jax/core/compile/backend_compile_duration":
    _COMPILES.append(event)


def test_grid_on_member_axis_equals_separate_runs_and_new_values_do_not_recompile(setup):
  s = setup
  originals = jax.tree.map(lambda x: x[1:], s.orig)  # the width-8 member, 1 seed
  grid = {"alpha": (0.5, 0.9, 0.99), "learning_rate": (0.05,)}
  stacked, hparams, points = methods.expand_grid(originals, grid)
  keys = methods.repeat_members(s.keys[1:], len(points))
  run = lambda orig, hp, k: methods.unlearn(
      "neggrad_plus", s.model, orig, s.task, MemberInputs(k, hp),
      RunSettings(epochs=2, batch_size=BATCH, forget_batch_size=8))[0]
  grid_state = run(stacked, hparams, keys)
  assert [p["alpha"] for p in points] == [0.5, 0.9, 0.99] and hparams["alpha"].shape == (3,)
  for g, point in enumerate(points):
    alone = run(originals, point, s.keys[1:])
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(grid_state.params)):
      np.testing.assert_allclose(a[0], b[g], rtol=1e-5, atol=1e-6)
  other = jax.block_until_ready({"alpha": jnp.array([0.1, 0.2, 0.3]),
                                 "learning_rate": jnp.array([0.01, 0.02, 0.03]),
                                 "weight_decay": jnp.array([0.0, 1e-3, 1e-2])})
  jax.monitoring.register_event_duration_secs_listener(_on_event)
  try:
    _COMPILES.clear()
    new_state = run(stacked, other, keys)
    jax.block_until_ready(new_state)
    assert not _COMPILES, f"{len(_COMPILES)} compilations for new hyperparameter values"
  finally:
    jax.monitoring.unregister_event_duration_listener(_on_event)
  assert not np.allclose(jax.tree.leaves(new_state.params)[0],
                         jax.tree.leaves(grid_state.params)[0])


def _scrub(s, epochs, strategy=train.Strategy()):
  hp = {"msteps": jnp.array([1.0, 2.0]), "learning_rate": 0.02}
  return methods.unlearn("scrub", s.model, s.orig, s.task, MemberInputs(s.keys, hp, s.mask),
                         RunSettings(epochs=epochs, batch_size=BATCH, forget_batch_size=8,
                                     strategy=strategy))


def test_execution_strategies_agree_for_a_gated_multi_phase_method(setup):
  s = setup
  outs = [_scrub(s, 3, st)[0] for st in (train.Strategy(0, "scan"), train.Strategy(1, "host"))]
  for a, b in zip(jax.tree.leaves(outs[0].params), jax.tree.leaves(outs[1].params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # msteps=1: one max pass (3 steps of 8) + 3 min passes (5 steps of 32); msteps=2: two max passes.
  assert outs[0].step.tolist() == [3 + 15, 6 + 15]


def test_gated_phase_metrics_come_from_the_last_epoch_the_member_ran_it(setup):
  s = setup
  # msteps = [1, 2]: member 0 runs the max pass in epoch 0 only, member 1 in epochs 0 and 1.
  _, one = _scrub(s, 1)
  _, two = _scrub(s, 2)
  max_kl = "max/forget_kl"
  assert float(two[max_kl][0]) == float(one[max_kl][0])  # epoch 1 must not overwrite it
  assert float(two[max_kl][1]) != float(one[max_kl][1])
  assert float(two["min/retain_ce"][0]) != float(one["min/retain_ce"][0])  # ungated: last epoch
  _, none = methods.unlearn(
      "scrub", s.model, s.orig, s.task,
      MemberInputs(s.keys, {"msteps": jnp.array([0.0, 1.0])}, s.mask),
      RunSettings(epochs=1, batch_size=BATCH, forget_batch_size=8))
  assert np.isnan(none[max_kl][0]) and np.isfinite(none[max_kl][1])  # never ran for member 0


def test_neggrad_plus_reference_options_decay_toward_the_original_with_frozen_bn(cnn_setup):
  """SCRUB's NegGrad+: plain SGD, L2 pull toward the original weights, frozen BatchNorm."""
  s = cnn_setup
  reference = methods.get("neggrad_plus", momentum=0.0, weight_decay_toward="original",
                          bn_train=False)
  assert not reference.phases[0].bn_train
  assert methods.get("neggrad_plus").phases[0].bn_train  # the default is unchanged
  hp = {"learning_rate": 0.05, "weight_decay": 0.5}
  run = lambda m: methods.unlearn(m, s.model, s.orig, s.task, MemberInputs(s.keys, hp, s.mask),
                                  RunSettings(epochs=1, batch_size=BATCH, forget_batch_size=8,
                                              strategy=CNN_STRATEGY))[0]
  frozen, default = run(reference), run(methods.get("neggrad_plus"))
  for a, b in zip(jax.tree.leaves(frozen.batch_stats), jax.tree.leaves(s.orig.batch_stats)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(default.batch_stats),
                                                      jax.tree.leaves(s.orig.batch_stats)))
  # Same gradients, different decay: toward the original stays much closer to it.
  dist = lambda st: sum(float(jnp.sum((a - b) ** 2)) for a, b in
                        zip(jax.tree.leaves(st.params), jax.tree.leaves(s.orig.params)))
  toward_zero = run(methods.get("neggrad_plus", momentum=0.0, bn_train=False))
  assert dist(frozen) < dist(toward_zero)


def test_bad_teacher_reference_loss_scale_is_the_elementwise_mean_kl(setup):
  s = setup
  hp = {"temperature": 2.0, "learning_rate": 0.0}  # no step: losses at the original model
  run = lambda m: methods.unlearn(m, s.model, s.orig, s.task,
                                  MemberInputs(s.keys, hp, s.mask, s.init),
                                  RunSettings(epochs=1, batch_size=BATCH, forget_batch_size=8))[1]
  ours = run(methods.get("bad_teacher"))
  reference = run(methods.get("bad_teacher", loss_scale="reference"))
  scale = 4 * 2.0**2  # C * T^2
  # The student starts at the teacher: retain KL is ~0, so compare it absolutely.
  np.testing.assert_allclose(reference["paired/retain_kl_mean"] * scale, ours["paired/retain_kl"],
                             rtol=1e-5, atol=1e-6)
  assert np.all(ours["paired/forget_bad_kl"] > 0.01)
  np.testing.assert_allclose(reference["paired/forget_bad_kl_mean"] * scale,
                             ours["paired/forget_bad_kl"], rtol=1e-5)
  with pytest.raises(ValueError, match=r"loss_scale='torch' is not one of"):
    methods.get("bad_teacher", loss_scale="torch")


@pytest.mark.parametrize("name", methods.names())
def test_padded_member_equals_the_narrow_network_alone(setup, name):
  s = setup
  narrow_model = models.get("mlp", 4, 4)
  narrow_like = train.init_variables("mlp", 4, 4, 0, s.d["x"][:2])
  unpad = lambda v: jax.tree.map(lambda x: x[None],
                                 models.unpad_variables(_member(v, 0), narrow_like))
  narrow_orig = unpad(s.orig)
  narrow_init = unpad(s.init)
  run = RunSettings(epochs=2, batch_size=BATCH, forget_batch_size=8)
  hp = {"selection_weighting": 1.0} if name == "ssd" else None  # the default selects nothing here
  padded, _ = methods.unlearn(name, s.model, s.orig, s.task,
                              MemberInputs(s.keys, hp, s.mask, s.init), run)
  alone, _ = methods.unlearn(name, narrow_model, narrow_orig, s.task,
                             MemberInputs(s.keys[:1], hp, None, narrow_init), run)
  corner = models.unpad_variables(_member(padded.params, 0), narrow_like.params)
  for a, b in zip(jax.tree.leaves(_member(alone.params, 0)), jax.tree.leaves(corner)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for p, m in zip(jax.tree.leaves(_member(padded.params, 0)), jax.tree.leaves(_member(s.mask, 0))):
    assert float(jnp.abs(jnp.where(m > 0, 0.0, p)).max()) == 0.0  # padding stays exactly 0
  moved = [not np.array_equal(a, b) for a, b in
           zip(jax.tree.leaves(alone.params), jax.tree.leaves(narrow_orig.params))]
  assert any(moved), f"{name} changed nothing"


def test_unknown_names_and_bad_inputs_raise(setup):
  s = setup
  args = (s.model, s.orig, s.task)
  with pytest.raises(ValueError, match="Unknown unlearning method 'forget_it'"):
    methods.unlearn("forget_it", *args, MemberInputs(s.keys))
  with pytest.raises(ValueError, match=r"Unknown hyperparameter\(s\) \['lr'\].*learning_rate"):
    methods.unlearn("finetune", *args, MemberInputs(s.keys, {"lr": 0.1}))
  with pytest.raises(ValueError, match=r"shape \(2,\)"):
    methods.unlearn("finetune", *args, MemberInputs(s.keys, {"learning_rate": jnp.ones(3)}))
  one_epoch = RunSettings(epochs=1, batch_size=BATCH)
  with pytest.raises(ValueError, match="needs init_variables"):
    methods.unlearn("bad_teacher", *args, MemberInputs(s.keys), one_epoch)
  with pytest.raises(ValueError, match="needs init_variables"):
    methods.unlearn("retrain", *args, MemberInputs(s.keys), one_epoch)
  with pytest.raises(TypeError, match="must be train.Variables"):
    methods.unlearn("finetune", s.model, {"params": s.orig.params}, s.task, MemberInputs(s.keys))


@pytest.mark.parametrize("name", ["finetune", "ssd", "cf_k", "eu_k"])
def test_padded_batchnorm_member_equals_the_narrow_network_alone(cnn_setup, name):
  """BatchNorm in train mode (fine-tuning) and frozen (SSD's importances) with padded channels."""
  s = cnn_setup
  narrow_model = models.get("cnn", 2, 4)
  narrow_like = train.init_variables("cnn", 2, 4, 0, s.d["x"][:2])
  narrow_orig = jax.tree.map(lambda x: x[None], models.unpad_variables(_member(s.orig, 0),
                                                                       narrow_like))
  hp = {"selection_weighting": 1.0} if name == "ssd" else None
  if name in ("cf_k", "eu_k"):
    hp = {"last_layers": 2.0}   # a conv layer and its BatchNorm train too
  run = RunSettings(epochs=1, batch_size=BATCH, forget_batch_size=8, strategy=CNN_STRATEGY)
  narrow_fresh = jax.tree.map(lambda x: x[None], models.unpad_variables(_member(s.init, 0),
                                                                        narrow_like))
  padded, _ = methods.unlearn(name, s.model, s.orig, s.task,
                              MemberInputs(s.keys, hp, s.mask, s.init), run)
  alone, _ = methods.unlearn(name, narrow_model, narrow_orig, s.task,
                             MemberInputs(s.keys[:1], hp, None, narrow_fresh), run)
  mine = models.unpad_variables(_member(padded.variables, 0), narrow_like)
  for a, b in zip(jax.tree.leaves(_member(alone.variables, 0)), jax.tree.leaves(mine)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for p, m in zip(jax.tree.leaves(_member(padded.params, 0)), jax.tree.leaves(_member(s.mask, 0))):
    assert float(jnp.abs(jnp.where(m > 0, 0.0, p)).max()) == 0.0
