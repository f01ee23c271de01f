"""Tiny member-stacked originals shared by the unlearning-method tests (fixtures in conftest)."""
import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import data as data_lib
from unlearn_jax import train
from unlearn_jax.methods import ForgetTask

BATCH = 32
# XLA:CPU convolutions are slow inside scan and vmap (train/drivers.py): one member at a time.
CNN_STRATEGY = train.Strategy(1, "host")


def member(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def mlp_setup():
  ds = data_lib.load("synthetic", num_train=160, num_test=40, length=12)
  d = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  # Member 0 is a width-4 MLP zero-padded into the width-8 shape of member 1.
  members = [train.Member(0, 4, 0.1, 0.0), train.Member(1, 8, 0.1, 0.0)]
  factory = train.make_optimizer("sgd", "constant", 1)
  model, init, mask = train.init_members("mlp", members, 4, d["x"][:2], factory)
  keys = train.member_keys(members, 0)
  state, _ = train.train(model, train.any_optimizer(factory), init, d, np.arange(160), keys,
                         epochs=4, batch_size=BATCH, augment=False, strategy=train.Strategy())
  forget = np.arange(0, 160, 8)
  retain = np.setdiff1d(np.arange(160), forget)
  return types.SimpleNamespace(
      d=d, model=model, mask=mask, keys=keys, forget=forget, retain=retain,
      orig=state.variables, init=init.variables, task=ForgetTask(d, retain, forget))


def cnn_setup(s):
  members = [train.Member(0, 2, 0.1, 0.0), train.Member(1, 3, 0.1, 0.0)]
  factory = train.make_optimizer("sgd", "constant", 1)
  model, init, mask = train.init_members("cnn", members, 4, s.d["x"][:2], factory)
  # Other seeds' initialisations: the fresh layers EU-k starts from.
  fresh_members = [dataclasses.replace(m, seed=m.seed + 100) for m in members]
  _, fresh, _ = train.init_members("cnn", fresh_members, 4, s.d["x"][:2], factory)
  # Untrained "originals" suffice for equivalence tests and save a slow CNN training run.
  return types.SimpleNamespace(**{**vars(s), "model": model, "mask": mask,
                                  "keys": train.member_keys(members, 0), "orig": init.variables,
                                  "init": fresh.variables})
