"""Drawing from plain numbers (curves, gaps, a matrix) by matplotlib's object API: each
function returns a `Figure` (a notebook shows it inline), and `save` writes one to a PNG
file atomically. It knows nothing of handgrad's results; `figures` turns those into the
numbers drawn here.

No pyplot state and no backend switch: a `Figure` gets its own Agg canvas, so calling
handgrad leaves a notebook's inline plots as they were. Epochs are integer ticks, and every
legend sits outside the curves.

    curves: {label: {"train_loss": [...], "val_loss": [...],
                     "train_accuracy": [...], "val_accuracy": [...]}}   (one value per epoch)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

Curves = Mapping[str, Mapping[str, Sequence[float]]]
STYLES = {"train": "-", "val": "--"}
KIND_NAMES = {"train": "train", "val": "validation"}


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    """A figure on its own Agg canvas (no pyplot), with `ncols` axes side by side."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as PNG: a temporary file beside `path`, then rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def epoch_axis(ax) -> None:
    """x axis labelled "epoch", with integer ticks only; a light grid."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _plot_metric(ax, curves: Curves, metric: str, highlight: str | None,
                 underlay: bool = False) -> None:
    """train (solid) and validation (dashed) of `metric` for every label, one colour each.
    underlay: the first label drawn wide and pale under the others, so that identical
    curves stay visible."""
    for i, (label, series) in enumerate(curves.items()):
        width, alpha = (2.6 if label == highlight else 1.3), 1.0
        if underlay and i == 0:
            width, alpha = 5.0, 0.35
        for kind, style in STYLES.items():
            values = series.get(f"{kind}_{metric}") or []
            if len(values):
                ax.plot(range(1, len(values) + 1), values, style, color=f"C{i % 10}",
                        linewidth=width, alpha=alpha, marker="o", markersize=2.5,
                        label=f"{label} ({KIND_NAMES[kind]})")
    epoch_axis(ax)


def curves_figure(curves: Curves, title: str, highlight: str | None = None,
                  loss_label: str = "mean loss per sample") -> Figure:
    """Loss (left) and accuracy (right) per epoch for every run in `curves`; train solid,
    validation dashed, the `highlight` label drawn thicker; one legend below both."""
    fig, (loss_ax, acc_ax) = new_figure(10, 4.2 + 0.18 * len(curves), ncols=2)
    _plot_metric(loss_ax, curves, "loss", highlight)
    _plot_metric(acc_ax, curves, "accuracy", highlight)
    loss_ax.set_ylabel(loss_label)
    acc_ax.set_ylabel("accuracy")
    fig.suptitle(title)
    handles, labels = loss_ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7)
    return fig


def engines_figure(curves: Curves, gaps: Sequence[Mapping[str, float]], title: str) -> Figure:
    """Left: both engines' loss curves. Right: |manual - autograd| per epoch on a log scale,
    so that curves drawn on top of each other still show how close they are.

    gaps: one {"epoch", "train_gap", "val_gap"} a epoch (`Comparison.gaps()`)."""
    fig, (loss_ax, gap_ax) = new_figure(10, 4.4, ncols=2)
    _plot_metric(loss_ax, curves, "loss", highlight=None, underlay=True)
    loss_ax.set_ylabel("mean loss per sample")
    loss_ax.set_title("loss curves (on top of each other when the engines agree)", fontsize=9)
    zeros = 0
    for kind, marker in (("train", "o"), ("val", "x")):
        points = [(g["epoch"], g[f"{kind}_gap"]) for g in gaps if g[f"{kind}_gap"] > 0]
        zeros += len(gaps) - len(points)
        if points:  # markers only: an epoch with gap 0 has no place on a log scale
            gap_ax.plot(*zip(*points, strict=True), marker, color="C3" if kind == "train"
                        else "C4", label=f"{KIND_NAMES[kind]} loss gap")
    if zeros == 2 * len(gaps):
        gap_ax.text(0.5, 0.5, "the engines' losses are identical (gap 0)",
                    ha="center", va="center", transform=gap_ax.transAxes)
    else:
        gap_ax.set_yscale("log")
    zero_note = f" ({zeros} of {2 * len(gaps)} exactly 0, not drawn)" if zeros else ""
    gap_ax.set_ylabel("|manual - autograd| (log scale)")
    gap_ax.set_title(f"gap between the engines{zero_note}", fontsize=9)
    epoch_axis(gap_ax)
    gap_ax.set_xlim(0.5, max((g["epoch"] for g in gaps), default=1) + 0.5)
    fig.suptitle(title)
    handles, labels = loss_ax.get_legend_handles_labels()
    gap_handles, gap_labels = gap_ax.get_legend_handles_labels()
    fig.legend(handles + gap_handles, labels + gap_labels, loc="outside lower center",
               ncols=3, fontsize=7)
    return fig


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                     title: str, unit: str = "test images") -> Figure:
    """matrix[i][j]: images of true class i predicted as class j, written in each cell."""
    k = len(class_names)
    fig, (ax,) = new_figure(max(4.5, 0.5 * k + 2.5), max(4.0, 0.5 * k + 2))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    peak = max(max(row) for row in matrix) or 1
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                    color="white" if matrix[i][j] > peak / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=unit)
    return fig


HEALTH_PANELS = (("grad_norm", "‖dL/dW‖ (last step)", True),
                 ("weight_norm", "‖W‖", False),
                 ("update_ratio", "‖ΔW‖ / ‖W‖ (last update)", True),
                 ("dead_fraction", "dead ReLU units (fraction)", False))


def health_figure(runs: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
                  title: str) -> Figure:
    """One row a run, one column a quantity, one line a layer, against the epoch.

    runs: {run label: {layer: {"epoch": [...], "grad_norm": [...], "weight_norm": [...],
    "update_ratio": [...], "dead_fraction": [...] (empty for a non-ReLU layer)}}}."""
    fig = Figure(figsize=(12, 1.0 + 2.3 * max(len(runs), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(max(len(runs), 1), len(HEALTH_PANELS), squeeze=False)
    for row, (label, layers) in zip(grid, runs.items(), strict=False):
        for ax, (key, name, log) in zip(row, HEALTH_PANELS, strict=True):
            for i, (layer, series) in enumerate(layers.items()):
                values = series.get(key) or []
                if len(values):
                    ax.plot(series["epoch"], values, marker="o", markersize=2.5,
                            color=f"C{i % 10}", label=f"layer {layer}")
            if log and any(v > 0 for series in layers.values() for v in series.get(key) or []):
                ax.set_yscale("log")  # not when every value is 0 (a network that died)
            if key == "dead_fraction":
                ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{label}: {name}" if ax is row[0] else name, fontsize=8)
            epoch_axis(ax)
    fig.suptitle(title)
    handles, labels = grid[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8),
                   fontsize=7)
    return fig
