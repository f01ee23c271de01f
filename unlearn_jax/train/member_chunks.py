"""Running a function over the member axis in chunks of members.

Execution strategies bound how many members one compiled call sees (`Strategy.member_chunk`):
the driver's steps and member-stacked inference both slice consecutive chunks off the leading
axis of every input tree and concatenate the outputs back, here, in one place.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any


def map_member_chunks(fn: Callable[..., PyTree], chunk: int, *trees: PyTree,
                      concatenate: Callable = jnp.concatenate) -> PyTree:
  """`fn(*trees)` computed on consecutive chunks of `chunk` members (0: all at once).

  Every leaf of `trees` has the member axis first; `fn`'s outputs are joined along it by
  `concatenate` (`np.concatenate` for host outputs, so they are not copied to the device and
  back). With one chunk covering every member `fn` sees the trees themselves, unsliced.
  """
  num = jax.tree.leaves(trees)[0].shape[0]
  chunk = chunk or num
  if chunk >= num:
    return fn(*trees)
  outs = [fn(*(jax.tree.map(lambda x, s=s: x[s:s + chunk], t) for t in trees))
          for s in range(0, num, chunk)]
  return jax.tree.map(lambda *xs: concatenate(xs), *outs)
