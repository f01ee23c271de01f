"""Figures: the decision-plane plot and the report's figures from result rows."""
import numpy as np

from experiments import plots, report


def test_plot_plane_writes_a_png_of_two_panels(tmp_path):
  resolution = 8
  a_values = np.linspace(-1.0, 2.0, resolution)
  b_values = np.linspace(-0.5, 1.5, resolution)
  before = np.arange(resolution * resolution) % 3
  after = before.copy()
  after[:5] = (after[:5] + 1) % 3
  anchor_ab = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 1.0]])
  path = tmp_path / "plane.png"
  plots.plot_plane(before, after, a_values, b_values, anchor_ab, str(path), num_classes=3)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_errors_vs_width_from_rows(tmp_path):
  rows = [dict(stage=stage, method=method, width=str(w), seed=str(s), goal="", lam="",
               split=split, metric="error", value=str(0.1 * s + 1.0 / w))
          for stage, method in (("original", "original"), ("retrained", "retrain"))
          for w in (4, 16) for s in (0, 1) for split in ("train", "test", "forget")]
  path = tmp_path / "errors.png"
  plots.errors_vs_width(report.Table(rows), str(path))
  assert path.stat().st_size > 5000
