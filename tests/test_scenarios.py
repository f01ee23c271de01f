"""Ground-truth bias scenarios: mislabeled and backdoored forget sets, alone and in a sweep."""
import numpy as np
import pytest

from configs import smoke
from experiments import results, run as run_lib
from unlearn_jax import data as data_lib
from unlearn_jax.data import scenarios


@pytest.fixture(scope="module")
def splits():
  ds = data_lib.load("synthetic", num_train=200, num_test=40, length=12)
  return data_lib.make_splits(ds, forget_size=20, seed=0)


def test_mislabeled_flips_exactly_the_forget_labels(splits):
  out, scenario = scenarios.apply_scenario(splits, "mislabeled", seed=0)
  changed = np.flatnonzero(out.y_train != splits.y_train)
  np.testing.assert_array_equal(changed, splits.forget_idx)
  np.testing.assert_array_equal(out.y_train_clean, splits.y_train)
  assert scenario.name == "mislabeled" and scenario.x_test_triggered is None


def test_backdoor_triggers_exactly_the_forget_inputs(splits):
  out, scenario = scenarios.apply_scenario(splits, "backdoor", seed=0, target=2)
  changed = np.flatnonzero(np.any(out.x_train != splits.x_train, axis=1))
  assert set(changed) <= set(splits.forget_idx) and len(changed) >= len(splits.forget_idx) - 1
  assert np.all(out.y_train[splits.forget_idx] == 2)
  retain = splits.retain_idx
  np.testing.assert_array_equal(out.y_train[retain], splits.y_train[retain])
  assert scenario.x_test_triggered.shape == splits.x_test.shape


def test_scenario_errors(splits):
  with pytest.raises(ValueError, match="Unknown scenario 'poison'"):
    scenarios.apply_scenario(splits, "poison", seed=0)
  with pytest.raises(ValueError, match="backdoor target 7 is not a class"):
    scenarios.apply_scenario(splits, "backdoor", seed=0, target=7)


@pytest.mark.parametrize("scenario, metric", [("mislabeled", "true_label_recovery"),
                                              ("backdoor", "attack_success")])
def test_sweep_reports_ground_truth_metrics(tmp_path, scenario, metric):
  config = smoke.get_config()
  config.compilation_cache_dir = ""
  config.widths = (8,)
  config.unlearn.methods = ("retrain", "neggrad_plus")
  config.dataset.scenario = scenario
  run_lib.run(config, str(tmp_path))
  rows = [r for r in results.read_csv(str(tmp_path / "results.csv")) if r["metric"] == metric]
  stages = {r["stage"] for r in rows}
  assert {"original", "retrained", "unlearned", "selected"} <= stages
  assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
