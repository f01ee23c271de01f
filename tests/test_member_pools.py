"""Per-member index sets (shape (S, P)): member s sees exactly what it sees when its row is the
pool shared by every member, for training and for every kind of unlearning method."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import data as data_lib
from unlearn_jax import methods, train
from unlearn_jax.methods import ForgetTask, MemberInputs, RunSettings

BATCH = 16


@pytest.fixture(scope="module")
def setup():
  ds = data_lib.load("synthetic", num_train=96, num_test=16, length=8)
  d = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  members = [train.Member(0, 4, 0.1, 0.0), train.Member(1, 4, 0.1, 0.0)]
  factory = train.make_optimizer("sgd", "constant", 1)
  model, init, mask = train.init_members("mlp", members, 4, d["x"][:2], factory)
  keys = train.member_keys(members, 0)
  # Two forget sets of equal size, one per member; each retain set is the rest.
  forget = np.stack([np.arange(0, 96, 6), np.arange(3, 96, 6)])
  retain = np.stack([np.setdiff1d(np.arange(96), f) for f in forget])
  return types.SimpleNamespace(d=d, model=model, init=init, mask=mask, keys=keys,
                               factory=factory, forget=forget, retain=retain)


def _assert_member_equal(a, b, i):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y)[i])


def test_training_on_per_member_pools_equals_each_pool_shared(setup):
  s = setup
  fit = lambda pool: train.train(s.model, train.any_optimizer(s.factory), s.init, s.d, pool,
                                 s.keys, epochs=2, batch_size=BATCH, augment=False,
                                 strategy=train.Strategy())[0]
  per_member = fit(s.retain)
  shared = [fit(s.retain[i]) for i in range(2)]
  for i in range(2):
    _assert_member_equal(per_member.params, shared[i].params, i)
  first = lambda state: np.asarray(jax.tree.leaves(state.params)[0])[0]
  assert not np.array_equal(first(shared[0]), first(shared[1])), "pools must differ"


@pytest.mark.parametrize("name,hparams", [
    ("neggrad_plus", {"learning_rate": 0.05}),
    ("salun", {"learning_rate": 0.05, "salient_fraction": 0.5}),
    ("ssd", {"selection_weighting": 0.5}),
])
def test_unlearning_per_member_forget_sets_equals_each_set_shared(setup, name, hparams):
  s = setup
  trained = train.train(s.model, train.any_optimizer(s.factory), s.init, s.d, np.arange(96),
                        s.keys, epochs=2, batch_size=BATCH, augment=False,
                        strategy=train.Strategy())[0].variables
  run = lambda retain, forget: methods.unlearn(
      name, s.model, trained, ForgetTask(s.d, retain, forget),
      MemberInputs(s.keys, hparams, s.mask),
      RunSettings(epochs=1, batch_size=BATCH))[0]
  per_member = run(s.retain, s.forget)
  shared = [run(s.retain[i], s.forget[i]) for i in range(2)]
  for i in range(2):
    _assert_member_equal(per_member.params, shared[i].params, i)
  differs = [not np.array_equal(np.asarray(a)[1], np.asarray(b)[1])
             for a, b in zip(jax.tree.leaves(shared[0].params),
                             jax.tree.leaves(shared[1].params))]
  assert any(differs), "the two forget sets gave the same member: the test cannot fail"


def test_a_pool_of_the_wrong_shape_is_refused(setup):
  s = setup
  with pytest.raises(ValueError, match=r"\(2, P\)"):
    train.train(s.model, train.any_optimizer(s.factory), s.init, s.d,
                np.stack([s.retain[0]] * 3), s.keys, epochs=1, batch_size=BATCH, augment=False,
                strategy=train.Strategy())
