"""Test-wide JAX settings: CPU, small compile effort, float32."""
import os

# Several tests shard the member axis over forced host devices; this must be set before JAX starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
platform = os.environ.get("UNLEARN_JAX_TEST_PLATFORM")
if platform:
  os.environ["JAX_PLATFORMS"] = platform   # e.g. cuda, set by benchmarks/gpu_check.sh
else:
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Tiny models: compile time dominates, so trade run-time optimisation for faster compiles.
jax.config.update("jax_disable_most_optimizations", True)

import pytest  # noqa: E402

import sweep_support  # noqa: E402


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
  """An uninterrupted smoke sweep on the test session's 4 host devices: (workdir, values)."""
  from experiments import results, run as run_lib  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("reference")
  run_lib.run(sweep_support.config(), str(workdir))
  return workdir, sweep_support.values(results.read_csv(str(workdir / "results.csv")))


@pytest.fixture(scope="module")
def setup():
  """Two MLP originals (width 4 padded into 8, and 8) trained on tiny synthetic data."""
  import method_support  # pylint: disable=g-import-not-at-top
  return method_support.mlp_setup()


@pytest.fixture(scope="module")
def cnn_setup(setup):
  """Two untrained CNN members (width 2 padded into 3, and 3) on the same data."""
  import method_support  # pylint: disable=g-import-not-at-top
  return method_support.cnn_setup(setup)
