"""host_constants.jit: constant outputs from numpy, the rest compiled, bit for bit the same."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import compile_cache, host_constants


def _mixed(x, counts):
  """Two computed outputs, five exact constants, two that must stay compiled."""
  ones = jnp.ones((3, 2), jnp.float32)
  return {
      "computed": x * 2.0 + 1.0,
      "sum": counts.sum(),
      "zeros": jnp.zeros((3, 4), jnp.float32),
      "step": jax.vmap(lambda _: jnp.zeros((), jnp.int32))(x),
      "mask": jnp.concatenate([jnp.pad(ones, ((0, 1), (0, 2))), jnp.zeros((2, 4))]),
      "converted": jnp.full((2,), 3, jnp.int32).astype(jnp.float32).reshape(1, 2).T,
      "inside_jit": jax.jit(lambda: jnp.ones((2, 2), jnp.bfloat16))(),
      "weak": jnp.zeros((2,)) + 1,              # weakly typed: stays compiled
      "inexact": jnp.full((2,), 0.5).astype(jnp.int32),   # lossy conversion: stays compiled
  }


@pytest.fixture
def recorded_programs(monkeypatch):
  """The functions host_constants compiles, recorded."""
  programs = []
  real = compile_cache.jit

  def record(fun, **kwargs):
    programs.append(fun)
    return real(fun, **kwargs)
  monkeypatch.setattr(host_constants.compile_cache, "jit", record)
  return programs


def test_outputs_equal_the_whole_program_bit_for_bit(recorded_programs):
  x, counts = np.linspace(-1, 1, 3, dtype=np.float32), np.arange(4, dtype=np.int32)
  expected = jax.jit(_mixed)(x, counts)
  got = host_constants.jit(_mixed)(x, counts)
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for name in expected:
    assert isinstance(got[name], jax.Array), name
    assert jax.typeof(got[name]) == jax.typeof(expected[name]), name
    np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]), err_msg=name)
  # The pruned program (recorded after the whole-program fallback) computes only the four
  # outputs that are not exact constants.
  pruned = recorded_programs[-1]
  assert len(pruned(x, counts)) == 4


def test_constants_are_fresh_arrays_every_call():
  fn = host_constants.jit(lambda x: (x + 1, jnp.zeros((4,), jnp.float32)))
  first, second = fn(np.ones(2, np.float32))[1], fn(np.ones(2, np.float32))[1]
  assert first.unsafe_buffer_pointer() != second.unsafe_buffer_pointer()
  jax.jit(lambda z: z + 1, donate_argnums=0)(first)   # a donated constant spoils no later call
  np.testing.assert_array_equal(np.asarray(fn(np.ones(2, np.float32))[1]), np.zeros(4))


def test_each_argument_signature_gets_its_own_program():
  fn = host_constants.jit(lambda x: (x.sum(), jnp.zeros(x.shape, jnp.int32)))
  for n in (2, 5, 2):
    total, zeros = fn(np.arange(n, dtype=np.float32))
    assert zeros.shape == (n,) and float(total) == n * (n - 1) / 2
  assert len(fn._programs) == 2


def test_a_program_without_constants_is_compiled_whole(recorded_programs):
  fn = host_constants.jit(lambda x: x * 3)
  np.testing.assert_array_equal(np.asarray(fn(np.arange(3.0, dtype=np.float32))), [0, 3, 6])
  assert len(recorded_programs) == 1   # the whole-program jit only
