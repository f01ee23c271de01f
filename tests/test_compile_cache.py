"""The project's `jit`: which XLA:CPU options each program compiles with, and its fallbacks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import compile_cache


@pytest.fixture
def recorded(monkeypatch):
  """The compiler_options of every jax.jit the wrappers build."""
  seen = []
  real = jax.jit

  def recording_jit(fun, compiler_options=None, **kwargs):
    seen.append(compiler_options)
    return real(fun, compiler_options=compiler_options, **kwargs)

  monkeypatch.setattr(compile_cache.jax, "jit", recording_jit)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(compile_cache, "_SUPPORTED", {})
  return seen


def test_jit_builds_lazily_with_the_cpu_options_and_the_programs_own(recorded):
  f = compile_cache.jit(lambda x: x * 2.0)
  g = compile_cache.exact_jit(lambda x: x + 1)
  h = compile_cache.jit(lambda x: x - 1.0, options={"xla_backend_optimization_level": 1})
  assert recorded == []   # nothing is built before its first use
  assert float(f(jnp.float32(3.0))) == 6.0 and int(g(jnp.int32(3))) == 4
  assert float(h(jnp.float32(3.0))) == 2.0
  f(jnp.float32(1.0))   # built once
  cpu = compile_cache.CPU_OPTIONS
  assert recorded == [cpu,   # the probe of whether this XLA knows the option, once
                      cpu, {**cpu, **compile_cache.FAST_COMPILE},
                      {**cpu, "xla_backend_optimization_level": 1}]


def test_an_option_named_in_xla_flags_is_left_to_xla_flags(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4 "
                                  "--xla_cpu_use_fusion_emitters=true")
  assert compile_cache.cpu_options() is None
  assert compile_cache.cpu_options({"a": 1}) == {"a": 1}
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
  assert compile_cache.cpu_options() == compile_cache.CPU_OPTIONS


def test_an_option_this_xla_does_not_know_is_dropped_with_a_warning(monkeypatch, caplog):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(compile_cache, "CPU_OPTIONS", {"xla_no_such_option_anywhere": True})
  monkeypatch.setattr(compile_cache, "_SUPPORTED", {})
  with caplog.at_level("WARNING"):
    f = compile_cache.jit(lambda x: x * 3.0)
    assert float(f(jnp.float32(2.0))) == 6.0   # compiled with XLA's default instead
  assert "xla_no_such_option_anywhere" in caplog.text
  assert compile_cache.cpu_options() is None


def test_jit_passes_jit_arguments_and_attributes_through():
  @compile_cache.jit(static_argnums=1)
  def power(x, n):
    return x ** n

  assert float(power(jnp.float32(2.0), 3)) == 8.0
  assert power.__name__ == "power"
  text = power.lower(jnp.float32(2.0), 2).as_text()   # attributes reach the jitted function
  assert "multiply" in text
  # The same values as a plain jax.jit of the same function (integer arithmetic: exact).
  count = compile_cache.exact_jit(lambda x: jnp.sum(x > 2))
  x = np.arange(7)
  assert int(count(x)) == int(jax.jit(lambda x: jnp.sum(x > 2))(x)) == 4
