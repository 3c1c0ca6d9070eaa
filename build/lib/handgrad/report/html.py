"""report.html: one self-contained page (figures as PNG data URIs, the diagram as inline SVG,
styles and a small table-sorting script inline; nothing fetched) for a reproduce folder,
a sweep folder and a run directory. Jinja2 templates in report/templates/, autoescaped.

The pages have the sections of the Markdown reports (`markdown.sections` for reproduce),
sortable tables, the figures, the selected config, the gradient check and the settings.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup
from matplotlib.figure import Figure

from handgrad.report import figures
from handgrad.report.diagram import diagram
from handgrad.report.tables import (
    config_label,
    confusion_table,
    fixed_text,
    fmt,
    selection_text,
    summary_table,
    sweep_table,
)
from handgrad.report.templating import render
from handgrad.run.files import atomic_write_bytes
from handgrad.run.rundir import RunDir

REPORT = "report.html"


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str | None = None  # the value a sort uses (a number's full value)
    number: bool = False


@dataclass(frozen=True)
class HtmlTable:
    headers: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Picture:
    uri: str  # data:image/png;base64,...
    caption: str
    width: int
    height: int


def cell(value: Any) -> Cell:
    """A table cell: text as `fmt` writes it, numbers sorted by their full value."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Cell(fmt(value), repr(value), True)
    return Cell(fmt(value))


def page_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> HtmlTable:
    """A table for the page templates (`macros.html.j2`): cells formatted, numbers sortable."""
    return HtmlTable(list(headers), [[cell(v) for v in row] for row in rows])


def picture(source: Figure | Path, caption: str, dpi: int = 100) -> Picture:
    """A figure, or a PNG file already drawn, as an inline PNG."""
    if isinstance(source, Figure):
        buf = io.BytesIO()
        source.savefig(buf, format="png", dpi=dpi)
        data = buf.getvalue()
    else:
        data = Path(source).read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return Picture("data:image/png;base64," + base64.b64encode(data).decode(), caption,
                   width, height)


def write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def settings_pairs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else fmt(v))
            for k, v in config.items()]


def network_diagram(run_dir: str | Path) -> Markup | None:
    """The backward-pass diagram of a run directory's network (None when unreadable)."""
    try:
        record = RunDir(run_dir).read_record()
    except (OSError, ValueError):
        return None
    config = record["config"]
    return Markup(diagram(record["sizes"], config["activation"], loss=config["loss"]).svg)


# ---- reproduce ---------------------------------------------------------------------------

def reproduce_page(result: Any, parts: Sequence[tuple[str, list]],
                   figures_by_section: Mapping[int, Sequence[tuple[str, str]]]) -> str:
    """report.html of a `ReproduceResult` whose figures are drawn: `parts` are report.md's
    (title, paragraphs) sections with `page_table` tables, `figures_by_section` {section:
    [(caption, key of result.figures)]}."""
    r, out = result.results, Path(result.out)
    pictures = {n: [picture(out / result.figures[key], alt)
                    for alt, key in figures_by_section.get(n, []) if key in result.figures]
                for n in range(1, len(parts) + 1)}
    first = r["configs"][0]["run_dir"] if r["configs"] else None
    return render("reproduce.html.j2", title="handgrad: the classic exercise, reproduced",
                  r=r, sections=list(enumerate(parts, start=1)), pictures=pictures,
                  passed=result.passed, fixed=settings_pairs(r.get("fixed", {})),
                  diagram=network_diagram(first) if first else None)


def write_reproduce(result: Any, parts: Sequence[tuple[str, list]],
                    figures_by_section: Mapping[int, Sequence[tuple[str, str]]]) -> Path:
    return write(Path(result.out) / REPORT, reproduce_page(result, parts, figures_by_section))


# ---- sweep ---------------------------------------------------------------------------------

def sweep_page(summary: Mapping[str, Any], curves: Path | None = None) -> str:
    """report.html of a sweep (results.json's content); `curves`: its sweep_curves.png."""
    sel = summary["selected"]
    pictures = [picture(curves, "every config: train (solid) and validation (dashed)")
                if curves and curves.exists() else
                picture(figures.sweep_figure(summary), "every config")]
    pictures.append(picture(figures.sweep_health_figure(summary), "gradient health per layer"))
    selected = None
    if sel:
        selected = {"label": config_label(sel, summary["swept"]),
                    "why": selection_text(sel, summary["select_by"]),
                    "test": sel["test_loss"] is not None,
                    "summary": page_table(["metric", "value"], [
                        ["test loss", sel["test_loss"]], ["test accuracy", sel["test_accuracy"]]]),
                    "confusion": page_table(*confusion_table(sel["confusion_matrix"],
                                                             sel["class_names"]))
                    if sel.get("confusion_matrix") else None}
    first = summary["configs"][0]["run_dir"] if summary["configs"] else None
    return render("sweep.html.j2", title="handgrad sweep", s=summary,
                  configs=page_table(*sweep_table(summary)), fixed=fixed_text(summary),
                  selected=selected, pictures=pictures,
                  diagram=network_diagram(first) if first else None)


def write_sweep(summary: Mapping[str, Any], out: str | Path) -> Path:
    out = Path(out)
    return write(out / REPORT, sweep_page(summary, out / "sweep_curves.png"))


# ---- one run -------------------------------------------------------------------------------

LAYER_HEADERS = ["epoch", "layer", "‖dL/dW‖", "‖W‖", "‖ΔW‖/‖W‖", "dead units"]


def run_page(result: Any, run_dir: str | Path) -> str:
    """report.html of a `RunResult` written in `run_dir`."""
    history = [[m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy, m.seconds]
               for m in result.history]
    layers = [[h.epoch, h.layer, h.grad_norm, h.weight_norm, h.update_ratio, h.dead_fraction]
              for h in result.layers]
    pictures = []
    if result.history:
        pictures.append(picture(figures.run_figure(result), "loss and accuracy per epoch"))
    if result.layers:
        pictures.append(picture(figures.health_figure({"this run": result.layers}),
                                "gradient health per layer"))
    if result.test is not None:
        pictures.append(picture(figures.confusion_figure(
            {"confusion_matrix": result.test.confusion, "class_names": result.class_names},
            "test set"), "confusion matrix on the test set"))
    return render("run.html.j2", title=f"handgrad run: {Path(run_dir).name}", result=result,
                  summary=page_table(*summary_table(result.summary(),
                                                    test=result.test is not None)),
                  history=page_table(["epoch", "train loss", "train accuracy", "val loss",
                                      "val accuracy", "seconds"], history),
                  layers=page_table(LAYER_HEADERS, layers), pictures=pictures,
                  settings_list=settings_pairs(result.config.to_dict()),
                  diagram=network_diagram(run_dir))


def write_run(result: Any, run_dir: str | Path) -> Path:
    return write(Path(run_dir) / REPORT, run_page(result, run_dir))
