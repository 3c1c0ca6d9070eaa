"""Every table handgrad shows, in one place: what goes in it (`*_table` -> (headers, rows))
and how it is drawn (`text_table` for the terminal, `markdown_table` for results.md and
report.md, `html_table` for a notebook)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

Table = tuple[list[str], list[list[Any]]]


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits (scientific when tiny), None to '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with spaces, a rule under the header."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line.rstrip(), rule, *(b.rstrip() for b in body)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain <table> (a notebook styles it); every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_table(summary: Mapping[str, Any], test: bool = True) -> Table:
    """A run's final metrics (`RunResult.summary()`), test metrics only when `test`."""
    keys = ["status", "epochs_completed", "train_loss", "train_accuracy", "val_loss",
            "val_accuracy"]
    if test:
        keys += ["test_loss", "test_accuracy"]
    return ["metric", "value"], [[k, summary.get(k)] for k in keys]


def confusion_table(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> Table:
    """matrix[i][j]: images of true class i predicted as class j."""
    return (["true \\ predicted", *class_names],
            [[name, *row] for name, row in zip(class_names, matrix, strict=True)])


def gap_table(gaps: Sequence[Mapping[str, float]]) -> Table:
    """Both engines' losses per epoch and the larger of the train and validation gaps
    (`Comparison.gaps()`)."""
    headers = ["epoch", "manual train", "autograd train", "manual val", "autograd val",
               "largest gap"]
    rows = [[g["epoch"], g["manual_train_loss"], g["autograd_train_loss"], g["manual_val_loss"],
             g["autograd_val_loss"], g["max_gap"]] for g in gaps]
    return headers, rows


def sweep_table(summary: Mapping[str, Any]) -> Table:
    """Every config of a sweep (results.json's content) with all its hyperparameters; the
    selected one marked with '*'."""
    swept = summary.get("hyperparameters", summary["swept"])  # every one, swept or not
    chosen = summary["selected"]["run_dir"] if summary["selected"] else None
    headers = ["", *swept, "train loss", "val loss", "val acc", "status"]
    rows = [["*" if r["run_dir"] == chosen else "", *(r[k] for k in swept), r["train_loss"],
             r["val_loss"], r["val_accuracy"], r["status"]] for r in summary["configs"]]
    return headers, rows


def fixed_text(summary: Mapping[str, Any]) -> str:
    """'fixed: dataset=digits, activation=relu, ...': the settings every config of a sweep
    shares that its table does not show ('' for results written before they were kept)."""
    fixed = summary.get("fixed") or {}
    if not fixed:
        return ""
    return "fixed: " + ", ".join(f"{k}={fmt_setting(k, v)}" for k, v in fixed.items())


def fmt_setting(name: str, value: Any) -> str:
    """A setting as a sweep shows it: classes 'all' for every class, lists as '3,8'."""
    if value is None:
        return "all" if name == "classes" else "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return _setting(value)


def config_label(values: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """'lr=0.01 momentum=0.9' for the swept settings of a config."""
    keys = list(values) if keys is None else keys
    return " ".join(f"{k}={_setting(values[k])}" for k in keys)


def _setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def selection_text(selected: Mapping[str, Any], select_by: str) -> str:
    """'(validation loss 0.412)', or '(validation accuracy 0.93, validation loss 0.412)' when
    selected by accuracy: the metric it was selected by comes first."""
    loss = f"validation loss {fmt(selected['val_loss'])}"
    if select_by == "val_accuracy":
        return f"(validation accuracy {fmt(selected['val_accuracy'])}, {loss})"
    return f"({loss})"
