"""Unlearning building blocks (optax transforms), saliency ranking and the method registry."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import methods
from unlearn_jax.methods import builtins

PARAMS = {"w": jnp.array([1.0, -2.0, 0.0, 3.0]), "b": jnp.array([0.5])}
G_R = {"w": jnp.array([0.5, 0.25, -1.0, 0.0]), "b": jnp.array([1.0])}
G_F = {"w": jnp.array([-0.3, 0.7, 0.2, 0.1]), "b": jnp.array([-2.0])}


def _lift(factory, **hp):
  return optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(**hp)


def test_neggrad_plus_update_is_hand_computed_and_momentum_accumulates():
  lr, alpha, wd = 0.1, 0.9, 0.01
  tx = _lift(builtins.neggrad_plus_tx, learning_rate=lr, alpha=alpha, weight_decay=wd,
             momentum=0.9)
  state = tx.init(PARAMS)
  updates, state = tx.update({"retain_ce": G_R, "forget_ce": G_F}, state, PARAMS)
  d = jax.tree.map(lambda r, f, p: alpha * r - (1 - alpha) * f + wd * p, G_R, G_F, PARAMS)
  for k in PARAMS:
    np.testing.assert_allclose(updates[k], -lr * d[k], rtol=1e-6, atol=1e-7)
  updates2, _ = tx.update({"retain_ce": G_R, "forget_ce": G_F}, state, PARAMS)
  for k in PARAMS:
    np.testing.assert_allclose(updates2[k], -lr * 1.9 * d[k], rtol=1e-6, atol=1e-7)


def test_combine_terms_skips_absent_terms_and_rejects_unknown_ones():
  tx = methods.combine_terms(forget_kl=-1.0, retain_ce=0.5)
  out, _ = tx.update({"retain_ce": G_R}, tx.init(PARAMS))
  np.testing.assert_allclose(out["w"], 0.5 * G_R["w"])
  with pytest.raises(ValueError, match=r"terms \['forget_ce'\] without a weight"):
    tx.update({"forget_ce": G_F}, tx.init(PARAMS))
  with pytest.raises(TypeError, match="mapping"):
    tx.update(G_R["w"], tx.init(PARAMS))
  with pytest.raises(ValueError, match="without a weight"):  # a plain gradient tree, not terms
    tx.update(G_R, tx.init(PARAMS))


def test_l1_step_adds_lr_gamma_sign_and_decays_per_epoch():
  lr, gamma = 0.1, 0.2
  # 2 epochs of 3 steps: gamma_t = gamma for steps 0-2, gamma/2 for steps 3-5.
  tx = _lift(builtins.l1_sparse_tx, learning_rate=lr, gamma=gamma, weight_decay=0.0,
             momentum=0.0, steps_per_epoch=3, total_steps=6)
  state = tx.init(PARAMS)
  seen = []
  for _ in range(6):
    updates, state = tx.update({"retain_ce": G_R}, state, PARAMS)
    seen.append(updates)
  sign = jax.tree.map(jnp.sign, PARAMS)
  for t, expected_gamma in enumerate([gamma] * 3 + [gamma / 2] * 3):
    for k in PARAMS:
      np.testing.assert_allclose(seen[t][k], -lr * (G_R[k] + expected_gamma * sign[k]),
                                 rtol=1e-6, atol=1e-7)
  assert seen[0]["w"][2] == -lr * G_R["w"][2]  # sign(0) = 0: zero (padded) entries get no push
  norm = methods.add_l1(1.0, normalizer=4.0)
  up, _ = norm.update(jax.tree.map(jnp.zeros_like, PARAMS), norm.init(PARAMS), PARAMS)
  np.testing.assert_allclose(up["w"], 0.25 * sign["w"])


def test_masked_hard_freezes_masked_entries_through_weight_decay_and_momentum():
  mask = {"w": jnp.array([1.0, 0.0, 1.0, 0.0]), "b": jnp.array([0.0])}
  tx = optax.chain(methods.combine_terms(retain_ce=1.0),
                   methods.masked_hard(methods.sgd_with_wd(0.1, 0.05, 0.9), mask))
  params, state = PARAMS, tx.init(PARAMS)
  for _ in range(4):
    updates, state = tx.update({"retain_ce": G_R}, state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(np.asarray(params["w"])[[1, 3]], np.asarray(PARAMS["w"])[[1, 3]])
  np.testing.assert_array_equal(params["b"], PARAMS["b"])
  assert not np.allclose(params["w"][0], PARAMS["w"][0])
  trace = state[1].inner_state[1].trace
  assert float(jnp.abs(trace["w"][jnp.array([1, 3])]).sum() + jnp.abs(trace["b"]).sum()) == 0.0


def test_every_numeric_hyperparameter_is_liftable_and_a_grid_is_member_data():
  alphas = jnp.array([0.5, 0.9, 0.99])

  def init(alpha):
    return _lift(builtins.neggrad_plus_tx, learning_rate=0.1, alpha=alpha, weight_decay=0.0,
                 momentum=0.9).init(PARAMS)

  states = jax.vmap(init)(alphas)
  tx = _lift(builtins.neggrad_plus_tx, learning_rate=0.0, alpha=0.0, weight_decay=0.0,
             momentum=0.0)
  updates, _ = jax.vmap(lambda s: tx.update({"retain_ce": G_R, "forget_ce": G_F}, s, PARAMS))(
      states)
  for i, a in enumerate(np.asarray(alphas)):
    alone, _ = _lift(builtins.neggrad_plus_tx, learning_rate=0.1, alpha=float(a),
                     weight_decay=0.0, momentum=0.9).update(
                         {"retain_ce": G_R, "forget_ce": G_F},
                         init(float(a)), PARAMS)
    np.testing.assert_allclose(updates["w"][i], alone["w"], rtol=1e-6)
  # Stand-alone blocks lift too.
  for factory, hp in [(methods.add_l1, dict(strength=0.1, decay_steps=10.0, period=2.0,
                                            normalizer=3.0)),
                      (methods.sgd_with_wd, dict(learning_rate=0.1, weight_decay=0.01,
                                                 momentum=0.9))]:
    state = _lift(factory, **hp).init(PARAMS)
    assert set(state.hyperparams) == set(hp)
    assert all(v.dtype == jnp.float32 for v in state.hyperparams.values())


def test_top_fraction_mask_counts_active_entries_only():
  scores = {"a": jnp.array([[5.0, 1.0, 9.0], [2.0, 2.0, 7.0]]), "b": jnp.array([3.0, 2.0, 8.0])}
  active = {"a": jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]), "b": jnp.array([1.0, 1.0, 0.0])}
  for r, expected in [(0.5, 3), (0.34, 2), (1.0, 6), (0.0, 0), (0.99, 5)]:
    sel = methods.top_fraction_mask(scores, active, r)
    assert int(sum(x.sum() for x in jax.tree.leaves(sel))) == expected
    for s, a in zip(jax.tree.leaves(sel), jax.tree.leaves(active)):
      assert float((s * (1 - a)).sum()) == 0.0  # never a padded entry, despite large scores
  # Active scores 5, 1, 2, 2 (a) and 3, 2 (b): the top 3 are 5, 3 and one of three tied 2s.
  # Ties go by flattening order (leaf 'a' before 'b', row-major), so a[1,0], then a[1,1].
  sel = methods.top_fraction_mask(scores, active, 0.5)
  np.testing.assert_array_equal(sel["a"], [[1, 0, 0], [1, 0, 0]])
  np.testing.assert_array_equal(sel["b"], [1, 0, 0])
  sel = methods.top_fraction_mask(scores, active, 4 / 6)
  np.testing.assert_array_equal(sel["a"], [[1, 0, 0], [1, 1, 0]])
  np.testing.assert_array_equal(sel["b"], [1, 0, 0])


def test_registry_names_flags_defaults_and_errors():
  expected = {"retrain", "finetune", "gradient_ascent", "neggrad_plus", "random_labels",
              "l1_sparse", "l1_sparse_normalized", "salun", "scrub", "bad_teacher", "ssd"}
  assert expected <= set(methods.names())
  uses = {n: methods.get(n).uses_forget for n in expected}
  assert not any(uses[n] for n in ("retrain", "finetune", "l1_sparse", "l1_sparse_normalized"))
  assert all(uses[n] for n in expected - {"retrain", "finetune", "l1_sparse",
                                          "l1_sparse_normalized"})
  for n in expected:
    m = methods.get(n)
    assert m.grid and set(m.grid) <= set(m.defaults) and m.grid_points()
  m = methods.get("neggrad_plus", alpha=0.5)
  assert m.defaults["alpha"] == 0.5 and methods.get("neggrad_plus").defaults["alpha"] == 0.99
  assert methods.get("ssd", reference_set="retain").options["reference_set"] == "retain"
  assert set(methods.REGISTRY["scrub"].tx_hparam_names) == {
      "learning_rate", "alpha", "gamma", "weight_decay", "momentum"}
  assert set(methods.REGISTRY["scrub"].data_hparam_names) == {"temperature", "msteps"}
  with pytest.raises(ValueError, match=r"Unknown unlearning method 'nope'; allowed: \["):
    methods.get("nope")
  with pytest.raises(ValueError, match=r"Unknown hyperparameter\(s\) \['beta'\].*allowed: \["):
    methods.get("scrub", beta=1.0)
  with pytest.raises(ValueError, match="uses_forget=False"):
    methods.Method("bad", "", uses_forget=False, defaults={"learning_rate": 0.1, "alpha": 0.5,
                                                         "weight_decay": 0.0, "momentum": 0.0},
                   grid={}, epochs=1, tx=builtins.neggrad_plus_tx,
                   phases=(methods.Phase("p", ("retain_ce", "forget_ce"), "retain"),))
  with pytest.raises(ValueError, match="Unknown loss term 'retain_mse'"):
    methods.Phase("p", ("retain_mse",), "retain")
  with pytest.raises(ValueError, match="loss term 'retain_ce' is already registered"):
    methods.register_term("retain_ce", methods.TERMS["retain_ce"])


def test_salient_count_truncates_like_the_reference():
  # Unlearn-Saliency keeps int(len(all_elements) * ratio) weights: truncation, not rounding.
  assert methods.salient_count(122, 0.4) == 48   # 48.8 (round: 49)
  assert methods.salient_count(11, 0.5) == 5     # 5.5 (round: 6)
  # float32 member data (0.7 -> 0.69999999) must not lose an exact product: int(10 * 0.7) = 7.
  for n, r in [(10, 0.7), (100, 0.7), (10, 0.3), (11_171_146, 0.3), (11_171_146, 0.1)]:
    assert methods.salient_count(n, np.float32(r)) == int(n * r)
  scores = {"w": jnp.arange(122, dtype=jnp.float32)}
  active = {"w": jnp.ones(122)}
  assert int(methods.top_fraction_mask(scores, active, 0.4)["w"].sum()) == 48
  assert int(methods.top_fraction_mask({"w": scores["w"][:11]}, {"w": active["w"][:11]},
                                       0.5)["w"].sum()) == 5
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    methods.salient_count(10, 1.5)


def test_decay_toward_start_pulls_toward_the_parameters_at_init():
  tx = methods.sgd_toward_start(learning_rate=0.1, weight_decay=0.5, momentum=0.0)
  state = tx.init(PARAMS)  # the start: the original model
  moved = jax.tree.map(lambda p: p + 2.0, PARAMS)
  zero_grads = jax.tree.map(jnp.zeros_like, PARAMS)
  updates, _ = tx.update(zero_grads, state, moved)
  for k in PARAMS:  # -lr * wd * (p - p0): back toward the original, not toward zero
    np.testing.assert_allclose(updates[k], -0.1 * 0.5 * 2.0 * np.ones_like(PARAMS[k]), rtol=1e-6)
  at_start, _ = tx.update(zero_grads, state, PARAMS)
  assert all(float(jnp.abs(u).max()) == 0.0 for u in jax.tree.leaves(at_start))
  lifted = _lift(builtins.neggrad_plus_toward_original_tx, learning_rate=0.1, alpha=0.9,
                 weight_decay=0.5, momentum=0.0)
  updates, _ = lifted.update({"retain_ce": zero_grads, "forget_ce": zero_grads},
                             lifted.init(PARAMS), moved)
  np.testing.assert_allclose(updates["w"], -0.1 * np.ones(4), rtol=1e-6)


def test_method_options_select_the_reference_settings_and_are_validated():
  default = methods.get("neggrad_plus")
  assert default.tx is builtins.neggrad_plus_tx and default.phases[0].bn_train
  reference = methods.get("neggrad_plus", momentum=0.0, weight_decay_toward="original",
                          bn_train=False)
  assert reference.tx is builtins.neggrad_plus_toward_original_tx
  assert not reference.phases[0].bn_train and reference.defaults["momentum"] == 0.0
  assert methods.get("neggrad_plus").tx is builtins.neggrad_plus_tx  # the registry is untouched
  bad_teacher = methods.get("bad_teacher", loss_scale="reference")
  assert bad_teacher.phases[0].terms == ("retain_kl_mean", "forget_bad_kl_mean")
  with pytest.raises(ValueError, match=r"weight_decay_toward='one'"):
    methods.get("neggrad_plus", weight_decay_toward="one")
  with pytest.raises(ValueError, match=r"bn_train='no'"):
    methods.get("neggrad_plus", bn_train="no")
  # tx and phases follow the options in every copy; setting them by hand needs the hook off.
  renamed = dataclasses.replace(reference, name="mine")
  assert renamed.tx is builtins.neggrad_plus_toward_original_tx
  assert renamed.with_hparams(bn_train=True).phases[0].bn_train
  with pytest.raises(ValueError, match="phases is derived from the options"):
    dataclasses.replace(default, phases=methods.get("finetune").phases)
  # Every documented deviation is listed, with the reference settings where options reach them.
  deviations = methods.deviations()
  assert {"neggrad_plus", "bad_teacher", "salun", "scrub"} <= set(deviations)
  assert "weight_decay_toward='original'" in deviations["neggrad_plus"]
  assert "0.017" in deviations["bad_teacher"] and "loss_scale" in deviations["bad_teacher"]


def test_elementwise_mean_kl_is_pytorch_kl_div_mean():
  teacher = jnp.array([[1.0, -0.5, 0.2], [0.3, 0.3, 2.0]])
  student = jnp.array([[0.0, 1.0, -1.0], [1.5, -0.2, 0.1]])
  t = 2.0
  p = jax.nn.softmax(teacher / t)
  log_q = jax.nn.log_softmax(student / t)
  torch_mean = float(jnp.mean(p * (jnp.log(p) - log_q)))  # kl_div(log_q, p), reduction='mean'
  refs = {"teacher_logits": teacher, "temperature": t}
  np.testing.assert_allclose(methods.TERMS["retain_kl_mean"].fn(student, refs), torch_mean,
                             rtol=1e-5)
  np.testing.assert_allclose(methods.TERMS["retain_kl"].fn(student, refs), torch_mean * 3 * t**2,
                             rtol=1e-5)


def test_per_term_sgd_keeps_one_buffer_per_term_and_matches_sgd_for_one_term():
  lr, wd = 0.1, 0.01
  alone = methods.per_term_sgd({"retain_ce": lr}, 0.9, {"retain_ce": wd})
  chained = optax.chain(methods.combine_terms(retain_ce=1.0), methods.sgd_with_wd(lr, wd, 0.9))
  s1, s2 = alone.init(PARAMS), chained.init(PARAMS)
  for _ in range(3):   # momentum accumulates identically
    u1, s1 = alone.update({"retain_ce": G_R}, s1, PARAMS)
    u2, s2 = chained.update({"retain_ce": G_R}, s2, PARAMS)
    for k in PARAMS:
      np.testing.assert_allclose(u1[k], u2[k], rtol=1e-6)
  both = methods.per_term_sgd({"retain_ce": lr, "forget_ce": 0.5}, 0.9)
  state = both.init(PARAMS)
  _, state = both.update({"forget_ce": G_F}, state, PARAMS)
  # The retain buffer never saw the forget step: its first retain step is plain -lr * g.
  u, state = both.update({"retain_ce": G_R}, state, PARAMS)
  for k in PARAMS:
    np.testing.assert_allclose(u[k], -lr * G_R[k], rtol=1e-6)
  np.testing.assert_allclose(state.traces["forget_ce"]["w"], G_F["w"], rtol=1e-6)
  with pytest.raises(ValueError, match=r"terms \['retain_kl'\] without a learning rate"):
    both.update({"retain_kl": G_R}, state, PARAMS)
