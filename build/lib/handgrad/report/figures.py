"""handgrad's figures from its results: a run's curves, a sweep's configs, the engines'
comparison, a confusion matrix and the gradient health per layer. Each returns a matplotlib
`Figure` (shown inline in a notebook); `plots.save(fig, path)` writes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from handgrad.report import plots
from handgrad.report.tables import config_label, fmt
from handgrad.run.health import LAYER_FIELDS
from handgrad.run.rundir import METRICS, RunDir

CURVE_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
ENGINE_LABELS = {"manual": "manual + handgrad.optim", "autograd": "autograd + torch.optim"}


def history_curves(history: Sequence[Any]) -> dict[str, list[float]]:
    """{train_loss, val_loss, train_accuracy, val_accuracy: [one value an epoch]} of a
    run's `history` (`EpochMetrics`)."""
    return {k: [getattr(m, k) for m in history] for k in CURVE_KEYS}


def read_curves(run_dir: str | Path) -> dict[str, list[float]]:
    """The same from a run directory's metrics.csv (empty lists when it has none yet)."""
    run = RunDir(run_dir)
    return history_curves(run.read_history() if run.file(METRICS).exists() else [])


def run_figure(result: Any, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch of one `RunResult` (train solid, validation dashed)."""
    c = result.config
    title = title or (f"{c.dataset}, {c.engine}, {c.optimizer} lr {c.lr:g} momentum "
                      f"{c.momentum:g} weight decay {c.weight_decay:g}")
    return plots.curves_figure({"this run": history_curves(result.history)}, title)


def sweep_figure(summary: Mapping[str, Any]) -> Figure:
    """Every config of a sweep (results.json's content), the selected one drawn thicker."""
    curves, highlight = {}, None
    chosen = summary["selected"]["run_dir"] if summary["selected"] else None
    for row in summary["configs"]:
        label = config_label(row, summary["swept"])
        if row["run_dir"] == chosen:
            label, highlight = f"{label} (selected)", f"{label} (selected)"
        curves[label] = read_curves(row["run_dir"])
    return plots.curves_figure(curves, "every config: train (solid) and validation (dashed)",
                               highlight=highlight)


def comparison_figure(comparison: Any) -> Figure:
    """Both engines' loss curves from one start, and their gap per epoch on a log scale."""
    curves = {ENGINE_LABELS[r.config.engine]: history_curves(r.history)
              for r in (comparison.manual, comparison.autograd)}
    dtype = comparison.manual.config.dtype
    return plots.engines_figure(curves, comparison.gaps(),
                                f"manual vs autograd, one start ({dtype}; largest gap "
                                f"{fmt(comparison.max_gap())})")


def confusion_figure(selected: Mapping[str, Any], title: str = "selected config on the test set",
                     ) -> Figure:
    """The confusion matrix of a sweep's selected config (or any dict with
    `confusion_matrix` and `class_names`)."""
    return plots.confusion_figure(selected["confusion_matrix"], selected["class_names"], title)


def health_series(layers: Sequence[Any]) -> dict[str, dict[str, list[float]]]:
    """{layer: {"epoch": [...], "grad_norm": [...], …}} of a run's `LayerHealth` rows
    (`dead_fraction` empty for a layer without ReLU)."""
    out: dict[str, dict[str, list[float]]] = {}
    for h in layers:
        series = out.setdefault(h.layer, {k: [] for k in ("epoch", *LAYER_FIELDS[2:])})
        for key in ("epoch", *LAYER_FIELDS[2:5]):
            series[key].append(getattr(h, key))
        if h.dead_fraction is not None:
            series["dead_fraction"].append(h.dead_fraction)
    return out


def health_figure(runs: Mapping[str, Sequence[Any]],
                  title: str = "gradient health per layer, each epoch") -> Figure:
    """Per run (label: its `LayerHealth` rows, `RunResult.layers` or layers.csv): the norms
    of dL/dW and W, the last update's size relative to W, and the dead ReLU units."""
    return plots.health_figure({label: health_series(rows) for label, rows in runs.items()},
                               title)


def sweep_health_figure(summary: Mapping[str, Any], most: int = 8) -> Figure:
    """`health_figure` of a sweep's configs (results.json's content), read from their run
    directories; with more than `most` configs, the selected one only."""
    rows = summary["configs"]
    if len(rows) > most and summary["selected"]:
        rows = [r for r in rows if r["run_dir"] == summary["selected"]["run_dir"]]
    return health_figure({config_label(r, summary["swept"]): RunDir(r["run_dir"]).read_layers()
                          for r in rows[:most]})
