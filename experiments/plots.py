"""Figures of a width sweep: quantities vs width and trade-off curves, from the result rows
(`report.Table`), and decision planes of one model before and after unlearning.

Matplotlib's object-oriented API with an explicit Agg canvas: no global backend is touched, so a
notebook in the same process keeps its own.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

_MAX_COLS = 4   # panels per figure row


def figure(panels=1, width=6.0, height=4.0):
  """A figure with `panels` axes, wrapped into rows of at most _MAX_COLS; unused axes hidden."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  cols = min(panels, _MAX_COLS)
  rows = -(-panels // cols)
  fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax in axes[panels:]:
    ax.set_visible(False)
  return fig, axes[:panels]


def errors_vs_width(t, path: str):
  fig, (ax,) = figure()
  for stage, method, style in (("original", "original", "-"), ("retrained", "retrain", "--")):
    for split, color in (("train", "tab:blue"), ("test", "tab:red"), ("forget", "tab:green")):
      ms = np.array([t.stat(stage, method, w, split, "error") for w in t.widths])
      ax.errorbar(t.widths, ms[:, 0], yerr=ms[:, 1], ls=style, color=color, marker="o",
                  label=f"{stage} {split}", capsize=3)
  ax.set_xscale("log")
  ax.set_xlabel("width")
  ax.set_ylabel("error")
  ax.set_title("errors vs width (mean ± std over seeds)")
  ax.legend(fontsize=7)
  fig.savefig(path, dpi=110, bbox_inches="tight")


def tradeoff(t, goal: str, lambdas, path: str):
  methods = t.methods()
  fig, axes = figure(len(t.widths), width=3.8, height=3.4)
  cmap = __import__("matplotlib").colormaps["tab10"]
  for ax, w in zip(axes, t.widths):
    for i, method in enumerate(methods):
      xs, ys, sizes = [], [], []
      for lam in lambdas:
        if goal == "privacy":
          gap = np.abs(t.get("selected", method, w, "forget", "gap_val", goal=goal, lam=lam))
          x = float(np.nanmean(gap)) if len(gap) else math.nan
        else:
          x = t.stat("selected", method, w, "forget", "error", goal=goal, lam=lam)[0]
        xs.append(x)
        ys.append(t.stat("selected", method, w, "test", "error", goal=goal, lam=lam)[0])
        sizes.append(30 + 150 * lam)
      ax.scatter(xs, ys, s=sizes, color=cmap(i % 10), alpha=0.7, label=method)
      ax.plot(xs, ys, color=cmap(i % 10), lw=0.8, alpha=0.6)
    ox = (abs(t.stat("original", "original", w, "forget", "gap_val")[0]) if goal == "privacy"
          else t.stat("original", "original", w, "forget", "error")[0])
    ax.scatter([ox], [t.stat("original", "original", w, "test", "error")[0]], marker="*",
               s=180, color="black", label="original")
    ax.set_title(f"width {w:g}")
    ax.set_xlabel("|forget - val error|" if goal == "privacy" else "forget error")
  for ax in axes[::_MAX_COLS]:
    ax.set_ylabel("test error")
  axes[-1].legend(fontsize=6)
  fig.suptitle(f"{goal}: test error vs goal (marker size = lambda)")
  fig.savefig(path, dpi=100, bbox_inches="tight")


def vs_width(t, series, ylabel: str, title: str, path: str):
  """One line per (label, fn[, style]) of series; fn(width) -> (mean, std)."""
  fig, (ax,) = figure()
  for label, fn, *style in series:
    ms = np.array([fn(w) for w in t.widths])
    ax.errorbar(t.widths, ms[:, 0], yerr=ms[:, 1], marker="o", capsize=3, label=label,
                **(style[0] if style else {}))
  ax.set_xscale("log")
  ax.set_xlabel("width")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  if series:
    ax.legend(fontsize=7)
  fig.savefig(path, dpi=110, bbox_inches="tight")


def lira_vs_width(t, lam: float, path: str, fpr: float = 0.01):
  """Left: the per-example attack's TPR at `fpr` per width (online LiRA / U-LiRA, 95% bootstrap
  intervals); right: the population loss attack on the same models (mean ± std over seeds)."""
  fig, (left, right) = figure(2)
  methods = t.methods("lira")
  colour = {m: f"C{i}" for i, m in enumerate(methods)}
  # The population panel's original / retrained in the colours of their LiRA rows.
  colour.update({short: colour[m] for m in methods for short in ("original", "retrain")
                 if m.startswith(short)})
  metric = f"online_tpr@{fpr:g}"
  for m in methods:
    one = lambda w, suffix="": t.stat("lira", m, w, "forget", metric + suffix)[0]
    mid = np.array([one(w) for w in t.widths])
    err = np.array([[mid[k] - one(w, "_low"), one(w, "_high") - mid[k]]
                    for k, w in enumerate(t.widths)]).T
    left.errorbar(t.widths, mid, yerr=err, marker="o", capsize=3, label=m, color=colour[m])
  left.axhline(fpr, color="gray", ls=":", label=f"chance (TPR = FPR = {fpr:g})")
  left.set_ylabel(f"TPR at {fpr:g} FPR")
  left.set_title("per-example attack (LiRA / U-LiRA, online)")
  pop = [("original", "original", {}), ("retrained", "retrain", {})]
  pop += [("selected", m, {"goal": "privacy", "lam": lam})
          for m in methods if m in t.methods("selected")]
  for stage, m, where in pop:
    ms = np.array([t.stat(stage, m, w, "forget", "mia_loss", **where) for w in t.widths])
    right.errorbar(t.widths, ms[:, 0], yerr=ms[:, 1], marker="o", capsize=3, label=m,
                   color=colour.get(m))
  right.axhline(0.5, color="gray", ls=":", label="chance")
  right.set_ylabel("loss-MIA accuracy")
  right.set_title(f"population attack, same models (privacy, lambda {lam:g})")
  for ax in (left, right):
    ax.set_xscale("log")
    ax.set_xlabel("width")
    ax.legend(fontsize=7)
  fig.savefig(path, dpi=110, bbox_inches="tight")


def plot_plane(labels_before, labels_after, a_values, b_values, anchor_ab, path: str,
               num_classes: int, titles: Sequence[str] = ("before unlearning",
                                                           "after unlearning"),
               anchor_names: Sequence[str] = ("x1", "x2", "x3"), dpi: int = 100) -> None:
  """Draws one plane's predicted classes before and after, side by side, and saves a PNG.

  Args:
    labels_before, labels_after: `(R * R,)` or `(R, R)` labels of one plane (one member's row of
      `plane_labels`).
    a_values, b_values: `(R,)` grid coordinates (`plane_grid` / `plane_axes`).
    anchor_ab: `(3, 2)` anchor coordinates (`plane_basis`); x1 is drawn as a star.
    path: output file.
    num_classes: fixes the colour of each class across both panels.
    titles: panel titles.
    anchor_names: labels written next to the anchors.
    dpi: output resolution.
  """
  # The object-oriented API with an explicit Agg canvas renders without touching pyplot's global
  # backend, which other code (or a notebook) in the same process may rely on.
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  resolution = len(a_values)
  before = np.asarray(labels_before).reshape(resolution, resolution)
  after = np.asarray(labels_after).reshape(resolution, resolution)
  base = colormaps["tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "hsv"]
  cmap = ListedColormap(base(np.linspace(0, 1, num_classes, endpoint=num_classes > 20))
                        if num_classes > 20 else base.colors[:num_classes])
  extent = (float(a_values[0]), float(a_values[-1]), float(b_values[0]), float(b_values[-1]))
  anchor_ab = np.asarray(anchor_ab)
  changed = float(np.mean(before != after))

  fig = Figure(figsize=(9, 4.2))
  FigureCanvasAgg(fig)
  for axis, labels, title in zip(fig.subplots(1, 2), (before, after), titles):
    axis.imshow(labels, origin="lower", extent=extent, cmap=cmap, vmin=-0.5,
                vmax=num_classes - 0.5, interpolation="nearest", aspect="auto")
    for k, (a, b) in enumerate(anchor_ab):
      axis.scatter([a], [b], marker="*" if k == 0 else "o", s=160 if k == 0 else 60,
                   c="white", edgecolors="black", zorder=3)
      axis.annotate(anchor_names[k], (a, b), textcoords="offset points", xytext=(6, 6),
                    fontsize=9, color="black")
    axis.set_title(title)
    axis.set_xlabel("a (along x2 - x1)")
  fig.axes[0].set_ylabel("b")
  fig.suptitle(f"changed fraction {changed:.3f}")
  fig.savefig(path, dpi=dpi)
