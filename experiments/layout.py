"""Every path of a sweep's workdir, built here and nowhere else.

    workdir/
      original/widths_<tag>/           Orbax checkpoints of the originals (per width bucket)
      retrained/widths_<tag>/          ... of the retrained references
      unlearn/<method>/widths_<tag>_<key>/   unlearned members over the method's grid
      group_original/, group_retrained/, forgetting_score/<method>/   the forgetting score's
                                       many models (one original unlearned K times, K + K
                                       retrained, K originals of other seeds)
      shadow_original/, shadow_retrained/, lira/<method>/   the membership attack's shadow
                                       models (trained on the train split, retrained without
                                       their halves, unlearned forgetting their halves)
      cache/evaluate/<set>_widths_<tag>.{npz,json}   evaluator outputs per model set
      cache/regions/<set>_widths_<tag>[_<goal>_<lam>].{npz,json}   decision-region changes
      cache/forgetting_score/<group>_widths_<tag>.{npz,json}   forget-set confidences of the
                                       forgetting score's groups and the attack's models
      figures/*.png, results.csv, report.md, run_info.json
      .lock                            held while a run is in progress

<tag> names a bucket's widths ('32-64-128'); <key> hashes what an unlearning result depends on;
<set> is 'original', 'retrained' or a method name.
"""
from __future__ import annotations

import dataclasses
import os


def bucket_tag(widths) -> str:
  """A bucket's name in directories and logs, e.g. '32-64-128'."""
  return "-".join(str(w) for w in widths)


@dataclasses.dataclass(frozen=True)
class Layout:
  workdir: str

  def _path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  def trained(self, stage: str, widths) -> str:
    """Checkpoints of one training stage ('original' or 'retrained') of a bucket."""
    return self._path(stage, f"widths_{bucket_tag(widths)}")

  def unlearned(self, method: str, widths, key: str) -> str:
    return self._path("unlearn", method, f"widths_{bucket_tag(widths)}_{key}")

  def group_unlearned(self, method: str, widths, key: str) -> str:
    """The forgetting score's K unlearning runs from one original (per bucket)."""
    return self._path("forgetting_score", method, f"widths_{bucket_tag(widths)}_{key}")

  def lira_unlearned(self, method: str, widths, key: str) -> str:
    """The membership attack's shadow models unlearned with `method` (per bucket)."""
    return self._path("lira", method, f"widths_{bucket_tag(widths)}_{key}")

  def group_confidences(self, model_set: str, widths) -> str:
    return self._path("cache", "forgetting_score", f"{model_set}_widths_{bucket_tag(widths)}")

  def evaluation(self, model_set: str, widths) -> str:
    """Cache stem (no extension) of the evaluator outputs of one model set of a bucket."""
    return self._path("cache", "evaluate", f"{model_set}_widths_{bucket_tag(widths)}")

  def regions(self, model_set: str, widths, goal: str = "", lam: float | None = None) -> str:
    suffix = f"_{goal}_{lam:g}" if goal else ""
    return self._path("cache", "regions", f"{model_set}_widths_{bucket_tag(widths)}{suffix}")

  @property
  def figures(self) -> str:
    return self._path("figures")

  def figure(self, name: str) -> str:
    return self._path("figures", name)

  @property
  def results_csv(self) -> str:
    return self._path("results.csv")

  @property
  def report(self) -> str:
    return self._path("report.md")

  @property
  def run_info(self) -> str:
    return self._path("run_info.json")

  @property
  def lock(self) -> str:
    return self._path(".lock")
