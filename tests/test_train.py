"""Member-stacked training: vmapped members vs separate runs, strategies, resume, divergence."""
import dataclasses
import functools
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import data as data_lib
from unlearn_jax import compile_cache, models, train
from unlearn_jax.train import batches, member_chunks, split_init

EPOCHS, BATCH = 2, 32


@pytest.fixture(scope="module")
def setup():
  ds = data_lib.load("synthetic", num_train=160, num_test=40, length=12)
  d = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  return d, np.arange(len(ds.y_train))


def _train(members, d, pool, strategy, model_name="mlp", epochs=EPOCHS, **model_kwargs):
  factory = train.make_optimizer("sgd", "cosine", total_steps=epochs * (len(pool) // BATCH))
  model, state, mask = train.init_members(model_name, members, 4, d["x"][:2], factory,
                                          **model_kwargs)
  state, metrics = train.train(model, train.any_optimizer(factory), state, d, pool,
                               train.member_keys(members, 0), epochs=epochs, batch_size=BATCH,
                               augment=False, strategy=strategy)
  return model, state, mask, metrics


@pytest.mark.parametrize("model_name, widths, kw", [
    ("mlp", (4, 8, 8), {}), ("cnn", (2, 3, 3), {"formulation": "shifted"}),
    ("cnn", (2, 3, 3), {"formulation": "flax"})])
def test_vmapped_padded_members_equal_separate_runs(setup, model_name, widths, kw):
  d, pool = setup
  members = [train.Member(0, widths[0], 0.1, 1e-3), train.Member(1, widths[1], 0.05, 0.0),
             train.Member(2, widths[2], 0.2, 5e-4)]
  _, stacked, _, metrics = _train(members, d, pool, train.Strategy(0, "scan"), model_name, **kw)
  for i, m in enumerate(members):
    _, alone, _, m_alone = _train([m], d, pool, train.Strategy(0, "scan"), model_name, **kw)
    alone_params = jax.tree.map(lambda x: x[0], alone.params)
    mine = models.unpad_variables(jax.tree.map(lambda x: x[i], stacked.params), alone_params)
    for a, b in zip(jax.tree.leaves(alone_params), jax.tree.leaves(mine)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["loss"][i], m_alone["loss"][0], rtol=1e-5)


@pytest.mark.parametrize("strategy", [train.Strategy(1, "host"), train.Strategy(2, "scan"),
                                      train.Strategy(0, "host")])
def test_execution_strategies_agree(setup, strategy):
  d, pool = setup
  members = train.member_grid([0, 1, 2], [3], [0.1], [1e-3])
  _, ref, _, _ = _train(members, d, pool, train.Strategy(0, "scan"), "cnn")
  _, out, _, _ = _train(members, d, pool, strategy, "cnn")
  for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(out)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("strategy", [train.Strategy(2, "scan"),
                                      train.Strategy(0, "scan", chunks=2),
                                      train.Strategy(0, "host", chunks=4)])
def test_member_chunks_train_the_same_models(setup, strategy):
  """Chunks only split the member axis: 5 members in chunks of 2 (or 2 chunks of 3 + 2, or 4
  chunks of 2, 2, 1) train the models one vmap over all 5 trains."""
  d, pool = setup
  members = train.member_grid([0, 1, 2, 3, 4], [8], [0.1], [1e-3])
  _, ref, _, ref_metrics = _train(members, d, pool, train.Strategy(0, "scan"))
  _, out, _, out_metrics = _train(members, d, pool, strategy)
  for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(out)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ref_metrics["loss"], out_metrics["loss"], rtol=1e-5)


def test_one_member_at_a_time_moves_last_bits_so_strategies_are_part_of_the_identity(setup):
  """Why a sweep's training identity holds the resolved strategy: the member count a dot sees
  changes its last bits at some widths (here 32 and 64, compiled as the tests compile), while the
  models agree to rounding (tests/test_sweep_safety.py checks the refusal)."""
  d, pool = setup
  moved = []
  for width in (32, 64):
    members = train.member_grid([0, 1, 2, 3, 4], [width], [0.1], [1e-3])
    _, ref, _, _ = _train(members, d, pool, train.Strategy(0, "scan"))
    _, one, _, _ = _train(members, d, pool, train.Strategy(1, "scan"))
    pairs = list(zip(jax.tree.leaves(ref.params), jax.tree.leaves(one.params)))
    for a, b in pairs:
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    moved.append(not all(np.array_equal(a, b) for a, b in pairs))
  assert any(moved)


def test_strategy_options_parse_and_bad_ones_are_named():
  auto = train.auto_strategy("mlp", 64)
  assert train.resolve_strategy("4, scan", "mlp", 64) == train.Strategy(4, "scan")
  with pytest.raises(ValueError, match=r"Bad strategy 'auto,fast'.*chunks=<N>"):
    train.resolve_strategy("auto,fast", "mlp", 64)
  # Options that have left the library are named as bad, not ignored.
  for gone in ("auto,fused_dots", "0,scan,groups=2"):
    with pytest.raises(ValueError, match=f"Bad strategy '{gone}'"):
      train.resolve_strategy(gone, "mlp", 64)
  with pytest.raises(ValueError, match=r"Bad strategy 'auto,chunks=two'.*chunks=<N>"):
    train.resolve_strategy("auto,chunks=two", "mlp", 64)
  assert train.resolve_strategy("auto,chunks=1", "mlp", 64) == dataclasses.replace(auto,
                                                                                   chunks=1)
  assert train.resolve_strategy("0,scan,chunks=3", "mlp", 64) == train.Strategy(0, "scan",
                                                                                chunks=3)
  with pytest.raises(ValueError, match=r"Bad strategy '4,scan,chunks=2'.*member_chunk=4.*not both"):
    train.resolve_strategy("4,scan,chunks=2", "mlp", 64)
  with pytest.raises(ValueError, match="chunks must be >= 1.*got 0"):
    train.resolve_strategy("0,scan,chunks=0", "mlp", 64)
  # chunks=N: ceil(S / N) members per call; member_chunk: that many.
  assert [train.Strategy(chunks=2).chunk_size(s) for s in (1, 5, 16)] == [1, 3, 8]
  assert train.Strategy(chunks=8).chunk_size(3) == 1
  assert train.Strategy(4).chunk_size(16) == 4 and train.Strategy().chunk_size(16) == 0


def test_first_sgd_step_matches_hand_computation():
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 0.25])}
  tx = train.make_optimizer("sgd", "constant", 10, momentum=0.9)(learning_rate=0.1,
                                                                  weight_decay=0.01)
  updates, state = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * (grads["w"] + 0.01 * params["w"]), rtol=1e-6)
  updates2, _ = tx.update(grads, state, params)
  g = grads["w"] + 0.01 * params["w"]
  np.testing.assert_allclose(updates2["w"], -0.1 * (g + 0.9 * g), rtol=1e-6)
  shape = train.optimizers.schedule_shape("step", 100, (0.5,), 0.1)
  assert float(shape(49)) == 1.0 and abs(float(shape(50)) - 0.1) < 1e-7


def test_unknown_optimizer_schedule_strategy():
  with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
    train.make_optimizer("rmsprop")
  with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
    train.make_optimizer("sgd", "linear")
  with pytest.raises(ValueError, match="Bad strategy 'fast'"):
    train.resolve_strategy("fast", "mlp", 8)


def test_auto_strategy_follows_the_measured_winners(monkeypatch):
  """The rules of benchmarks/results/h100_gpu_check.md (accelerators) and the CPU table."""
  one_at_a_time, vmapped = train.Strategy(1, "scan"), train.Strategy(0, "scan")
  for width, expected in ((4, vmapped), (8, vmapped), (16, one_at_a_time), (64, one_at_a_time)):
    assert train.auto_strategy("preact_resnet18", width, backend="gpu") == expected, width
  assert train.auto_strategy("preact_resnet18_scrub", 1, backend="tpu") == one_at_a_time
  assert train.auto_strategy("mlp", 4096, backend="gpu") == vmapped
  # Two member chunks on CPU, whatever the core count: chunk sizes can move the last bits.
  for cores in (1, 2, 64):
    monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
    for width in (8, 64, 128, 512):
      assert train.auto_strategy("mlp", width, backend="cpu") == train.Strategy(0, "scan",
                                                                                chunks=2)
  # ... and none where other programs share the cores (a sweep's stages).
  assert train.auto_strategy("mlp", 512, backend="cpu", shares_cores=True) == vmapped
  assert train.resolve_strategy("auto", "mlp", 256, shares_cores=True) == vmapped
  assert train.auto_strategy("mlp", 1024, backend="cpu") == one_at_a_time
  # The mCNN on CPU: chunks of 4 members up to width 4, one at a time above; host step loops.
  assert train.auto_strategy("cnn", 4, backend="cpu") == train.Strategy(4, "host")
  assert train.auto_strategy("cnn", 8, backend="cpu") == train.Strategy(1, "host")
  assert train.auto_strategy("preact_resnet18", 4, backend="cpu") == train.Strategy(1, "host")
  assert train.auto_strategy("preact_resnet18", 8, backend="cpu") == train.Strategy(1, "host")
  assert train.resolve_strategy("auto", "mlp", 64) == train.auto_strategy("mlp", 64)


def test_diverging_member_is_reported_and_others_unaffected(setup):
  d, pool = setup
  members = [train.Member(0, 8, 0.05, 0.0), train.Member(0, 8, 1e6, 0.0)]
  _, state, _, metrics = _train(members, d, pool, train.Strategy(0, "scan"))
  np.testing.assert_array_equal(train.diverged_members(state.params), [1])
  _, alone, _, _ = _train(members[:1], d, pool, train.Strategy(0, "scan"))
  for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-5)
  assert np.isfinite(metrics["loss"][0])


def test_epoch_batches_are_per_member_permutations():
  keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
  pool = jnp.arange(10, 20)
  b = np.asarray(train.epoch_batches(keys, pool, 3, 0))
  assert b.shape == (2, 3, 3)
  for m in range(2):
    assert len(set(b[m].ravel())) == 9 and set(b[m].ravel()) <= set(range(10, 20))
  assert not np.array_equal(b[0], b[1])
  assert not np.array_equal(b, np.asarray(train.epoch_batches(keys, pool, 3, 1)))
  with pytest.raises(ValueError, match="batch size 11 is larger than the pool of 10"):
    train.epoch_batches(keys, pool, 11, 0)


def test_one_index_stream_for_training_epochs_and_unlearning_phases():
  keys = jnp.stack([jax.random.key(3), jax.random.key(4)])
  pool = jnp.arange(100, 110)
  # A training epoch is permutation `epoch` of the stream, its partial last batch dropped.
  for epoch in (0, 2):
    expected = [np.asarray(jax.random.permutation(jax.random.fold_in(k, epoch), pool))[:9]
                for k in keys]
    np.testing.assert_array_equal(train.epoch_batches(keys, pool, 3, epoch),
                                  np.reshape(expected, (2, 3, 3)))
  # An unlearning phase tops its last batch up from the next permutation: 4 batches of 3 = 12.
  stream = np.asarray(train.member_batches(keys, pool, 3, 4))
  for m, k in enumerate(keys):
    perms = [np.asarray(jax.random.permutation(jax.random.fold_in(k, r), pool)) for r in (0, 1)]
    np.testing.assert_array_equal(stream[m].ravel(), np.concatenate(perms)[:12])
    np.testing.assert_array_equal(train.index_batches(k, pool, 3, 4), stream[m])


@pytest.mark.parametrize("members, pool_size, batch_size, steps, first, per_member", [
    (3, 10, 3, 7, 0, False),      # one sort round, 3 permutations
    (2, 2000, 128, 20, 5, False),  # two sort rounds, topped up from the next permutation
    (4, 300, 64, 4, 2, True),     # one pool per member
    (2, 1, 1, 3, 0, False),       # a pool of one: nothing to sort
])
def test_numpy_sorted_batches_are_the_device_sorted_ones(monkeypatch, members, pool_size,
                                                         batch_size, steps, first, per_member):
  # The sort keys come from a compiled program, every time (no path depends on timing).
  compiled_draws = []
  real_sort_keys = batches._sort_keys
  monkeypatch.setattr(batches, "_sort_keys",
                      lambda *a: compiled_draws.append(1) or real_sort_keys(*a))
  keys = jax.vmap(jax.random.key)(jnp.arange(members) + 7)
  ids = np.random.default_rng(pool_size).permutation(10 * members * pool_size)
  pool = jnp.asarray(ids[:pool_size * (members if per_member else 1)].reshape(
      (members, pool_size) if per_member else (pool_size,)), jnp.int32)
  assert batches._sort_on_host(keys, pool, first)   # CPU, outside a trace
  on_host = train.member_batches(keys, pool, batch_size, steps, first)
  on_device = batches._device_member_batches(keys, pool, batch_size, steps, first)
  assert on_host.dtype == on_device.dtype and on_host.shape == (members, steps, batch_size)
  np.testing.assert_array_equal(on_host, on_device)
  sorted_at_all = pool_size > 1
  assert len(compiled_draws) == int(sorted_at_all)
  again = train.member_batches(keys, pool, batch_size, steps, first)
  assert len(compiled_draws) == 2 * int(sorted_at_all)
  np.testing.assert_array_equal(again, on_host)
  # Inside a trace the sorts stay in the program; the indices are the same.
  traced = jax.jit(train.member_batches, static_argnums=(2, 3))(keys, pool, batch_size, steps,
                                                                 first)
  np.testing.assert_array_equal(traced, on_device)


def test_training_draws_each_epochs_batches_once_in_order(setup, monkeypatch):
  # Epoch e trains on `epoch_batches(keys, pool, batch, e)`: a resumed run draws from its start
  # epoch on, one epoch at a time, and nothing past the last one.
  from unlearn_jax.train import trainer  # pylint: disable=g-import-not-at-top
  d, pool = setup
  drawn, real_draw = [], trainer.epoch_batches
  monkeypatch.setattr(trainer, "epoch_batches", lambda *a: drawn.append(a[-1]) or real_draw(*a))
  members = train.member_grid([0, 1], [4], [0.1], [1e-3])
  factory = train.make_optimizer("sgd", "constant", 10)
  model, state, _ = train.init_members("mlp", members, 4, d["x"][:2], factory)
  train.train(model, train.any_optimizer(factory), state, d, pool, train.member_keys(members, 0),
              epochs=4, batch_size=BATCH, augment=False, strategy=train.Strategy(),
              start_epoch=1)
  assert drawn == [1, 2, 3]


def test_take_members_copies_on_the_host_what_a_copy_keeps_and_compiles_the_rest():
  # Floats and integers on one CPU device are copied in numpy; a tree with typed keys, or with a
  # weak-typed leaf whose type a numpy copy would make strong, takes the compiled gather. Either
  # way the result is the gather's, dtypes and weak types included.
  idx = [3, 3, 0, 2]
  plain = {"w": jnp.arange(12.0).reshape(4, 3), "step": jnp.arange(4, dtype=jnp.int32)}
  keyed = dict(plain, keys=jax.vmap(jax.random.key)(jnp.arange(4)))
  weak = dict(plain, lr=jnp.full((4,), 0.1) * 2.0)   # a Python float scaled: weak float32
  assert weak["lr"].weak_type
  for tree, on_host in ((plain, True), (keyed, False), (weak, False)):
    assert train.members.host_copyable(tree) == on_host
    got = train.take_members(tree, idx)
    want = train.members._take(tree, np.asarray(idx, np.int32))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      assert a.dtype == b.dtype and getattr(a, "weak_type", None) == getattr(b, "weak_type", None)
      if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        a, b = jax.random.key_data(a), jax.random.key_data(b)
      np.testing.assert_array_equal(a, b)


def test_host_counts_tests_and_zeros_equal_the_compiled_ones():
  from unlearn_jax.methods import importance
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(5, 3, 4)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)}
  params["w"] = params["w"].at[1, 2, 0].set(jnp.nan).at[3, 0, 1].set(-jnp.inf)
  params["b"] = params["b"].at[4, 3].set(jnp.inf)
  assert train.members.host_copyable(params)
  np.testing.assert_array_equal(train.diverged_members(params), [1, 3, 4])
  np.testing.assert_array_equal(
      ~np.asarray(train.members._finite_members(params)), [False, True, False, True, True])
  mask = jax.tree.map(lambda x: (jnp.abs(x) > 0.5).astype(jnp.float32), params)
  got, want = importance.count_active(mask), importance._compiled_count_active(mask)
  assert got.dtype == want.dtype == jnp.int32 and not got.weak_type
  np.testing.assert_array_equal(got, want)
  for a, b in zip(jax.tree.leaves(importance._zeros_like(params)),
                  jax.tree.leaves(importance._compiled_zeros_like(params))):
    assert a.dtype == b.dtype and a.shape == b.shape and not np.any(np.asarray(a))


def test_member_key_derivations_are_each_keys_fold_in():
  keys = jax.vmap(jax.random.key)(jnp.arange(-2, 5))
  for data in (0, 3, 2**31 - 1, np.int32(7)):
    np.testing.assert_array_equal(
        jax.random.key_data(batches.fold_in_members(keys, data)),
        np.stack([jax.random.key_data(jax.random.fold_in(k, data)) for k in keys]))


def test_shuffle_order_breaks_ties_as_the_stable_device_sort():
  # Keys from {0, 1, 2}: most are tied, and ties keep the order of the previous round.
  sort_keys = np.random.default_rng(0).integers(0, 3, size=(4, 2, 50)).astype(np.uint32)
  positions = jnp.broadcast_to(jnp.arange(50), (4, 50))
  for j in range(2):
    _, positions = jax.lax.sort_key_val(jnp.asarray(sort_keys[:, j]), positions)
  np.testing.assert_array_equal(batches.shuffle_order(sort_keys), positions)


def test_member_chunks_slice_and_concatenate_along_the_member_axis():
  tree = {"a": jnp.arange(5.0), "b": jnp.arange(10.0).reshape(5, 2)}
  seen = []

  def fn(t):
    seen.append(t["a"].shape[0])
    return {"sum": t["b"].sum(axis=1) + t["a"]}

  for chunk, sizes in [(0, [5]), (2, [2, 2, 1]), (5, [5]), (9, [5])]:
    seen.clear()
    out = train.map_member_chunks(fn, chunk, tree)
    np.testing.assert_array_equal(out["sum"], [1.0, 6.0, 11.0, 16.0, 21.0])
    assert sorted(seen) == sorted(sizes)   # chunks may run side by side, in any order


def test_member_chunks_side_by_side_train_bitwise_as_in_turn(setup, monkeypatch):
  d, pool = setup
  members = train.member_grid([0, 1, 2, 3, 4], [8], [0.1], [1e-3])
  threads, in_chunk = set(), member_chunks._in_chunk

  def spy(*args):
    threads.add(threading.get_ident())
    return in_chunk(*args)

  monkeypatch.setattr(member_chunks, "_in_chunk", spy)
  _, side, _, side_metrics = _train(members, d, pool, train.Strategy(2, "scan"))
  if member_chunks._side_by_side(3):   # CPU with 2 or more cores
    assert threads and threading.get_ident() not in threads   # the chunks ran in workers
  monkeypatch.setattr(member_chunks, "_side_by_side", lambda num_chunks: False)
  _, turn, _, turn_metrics = _train(members, d, pool, train.Strategy(2, "scan"))
  for a, b in zip(jax.tree.leaves((side, side_metrics)), jax.tree.leaves((turn, turn_metrics))):
    np.testing.assert_array_equal(a, b)


def test_width_buckets_bound_the_ratio_and_reject_bad_widths():
  assert train.width_buckets((1, 2, 3, 8, 16, 64), 4.0) == [(1, 2, 3), (8, 16), (64,)]
  with pytest.raises(ValueError, match="empty"):
    train.width_buckets((), 4.0)
  with pytest.raises(ValueError, match="positive"):
    train.width_buckets((0, 2), 4.0)


def test_widths_with_other_layers_get_their_own_bucket_and_cannot_share_one():
  # SCRUB's ResNet has an identity shortcut in its first block only at p = 1 (64-channel stem).
  x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
  structure = lambda w: train.variable_structure("preact_resnet18_scrub", w, 10, x)
  widths = (0.25, 0.5, 1.0, 2.0)
  assert train.width_buckets(widths, 4.0) == [(0.25, 0.5, 1.0), (2.0,)]
  assert train.width_buckets(widths, 4.0, structure) == [(0.25, 0.5), (1.0,), (2.0,)]
  members = [train.Member(0, 0.5, 0.1, 0.0), train.Member(0, 1.0, 0.1, 0.0)]
  with pytest.raises(ValueError, match="at width 0.5 has other layers than at width 1.0"):
    train.init_members("preact_resnet18_scrub", members, 10, x, train.make_optimizer())


@functools.lru_cache(maxsize=None)
def _one_member_init(model_name, width, num_classes, model_kwargs):
  model = models.get(model_name, width=width, num_classes=num_classes, **dict(model_kwargs))
  return jax.jit(lambda key, x: train.Variables.from_flax(model.init(key, x, train=False)))


def _init_members_one_at_a_time(model_name, members, num_classes, sample_x, tx_factory,
                                **model_kwargs):
  """The reference for `train.init_members`: each member initialised alone by a jitted init at
  its own width, padded and masked on the host, then stacked."""
  bucket_width = max(m.width for m in members)
  wide = models.get(model_name, width=bucket_width, num_classes=num_classes, **model_kwargs)
  wide_shapes = jax.eval_shape(lambda: train.Variables.from_flax(
      wide.init(jax.random.key(0), sample_x, train=False)))
  variables, masks = [], []
  for m in members:
    init = _one_member_init(model_name, m.width, num_classes, tuple(model_kwargs.items()))
    narrow = init(jax.random.fold_in(jax.random.key(m.seed), 0), sample_x)
    variables.append(models.pad_variables(narrow, wide_shapes))
    masks.append(models.active_mask(narrow.params, wide_shapes.params))
  stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
  variables, masks = stack(variables), stack(masks)
  lrs = jnp.asarray([m.learning_rate for m in members], jnp.float32)
  wds = jnp.asarray([m.weight_decay for m in members], jnp.float32)

  def init_one(params, batch_stats, lr, wd):
    tx = tx_factory(learning_rate=lr, weight_decay=wd)
    return train.TrainState(jnp.zeros((), jnp.int32), params, batch_stats, tx.init(params))

  return wide, jax.vmap(init_one)(variables.params, variables.batch_stats, lrs, wds), masks


def _assert_trees_identical(expected, actual):
  assert jax.tree.structure(expected) == jax.tree.structure(actual)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(expected)[0],
                          jax.tree.leaves(actual)):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (jax.tree_util.keystr(path), a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("model_name,widths,kwargs,optimizer,split", [
    ("mlp", (4, 16), {"depth": 2}, "sgd", True),
    ("mlp", (4, 16), {"depth": 2}, "sgd", False),
    ("cnn", (2, 4), {}, "adam", True),
], ids=["mlp-split", "mlp-one-program", "cnn-split"])
def test_init_members_is_bitwise_the_one_member_init(monkeypatch, split, model_name, widths,
                                                     kwargs, optimizer):
  # Committed results start from these initial weights, so the vmapped initialiser must give
  # exactly the bits of initialising each member alone. Both paths: split, with the random bits
  # drawn by a quickly compiled program (XLA:CPU), and one program (other backends).
  monkeypatch.setattr(split_init, "split_compile", lambda: split)
  split_draws = []
  real_split = split_init.split_initializer
  monkeypatch.setattr(split_init, "split_initializer",
                      lambda *a: split_draws.append(1) or real_split(*a))
  compile_cache.clear()   # the initialiser is built (split or not) afresh
  x = jnp.zeros((2, 40))   # MNIST-1D signals
  factory = train.make_optimizer(optimizer, "cosine", 10)
  grid = train.member_grid([0, 1, 7], list(widths), [0.1, 0.05], [5e-4])
  # Widths interleaved exercise the reorder; a seed beyond int32 (jax.random.key wraps it).
  members = grid[::2] + grid[1::2]
  members[0] = dataclasses.replace(members[0], seed=2**31 + 5)
  for ms in (grid, members):
    ref_model, ref_state, ref_mask = _init_members_one_at_a_time(model_name, ms, 4, x, factory,
                                                                 **kwargs)
    model, state, mask = train.init_members(model_name, ms, 4, x, factory, **kwargs)
    assert model == ref_model
    _assert_trees_identical(ref_state, state)
    _assert_trees_identical(ref_mask, mask)
  if split:   # the fast path was taken, not the one-program fallback
    init = train.members._seeded_init(model_name, widths[0], 4, tuple(kwargs.items()))
    assert split_init.splittable(jax.make_jaxpr(init)(0, x).jaxpr)
  assert bool(split_draws) == split


def test_init_members_rejects_an_empty_bucket():
  with pytest.raises(ValueError, match="at least one member"):
    train.init_members("mlp", [], 4, jnp.zeros((2, 40)), train.make_optimizer())
