"""Plain-text and Markdown tables: one renderer for the terminal, results.md and reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
    return "\n".join([line, rule, *body])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def sweep_table(summary: dict[str, Any]) -> tuple[list[str], list[list]]:
    """Every config of a sweep (results.json's content) with all its hyperparameters; the
    selected one marked with '*'."""
    swept = summary.get("hyperparameters", summary["swept"])  # every one, swept or not
    chosen = summary["selected"]["run_dir"] if summary["selected"] else None
    headers = ["", *swept, "train loss", "val loss", "val acc", "status"]
    rows = [["*" if r["run_dir"] == chosen else "", *(r[k] for k in swept), r["train_loss"],
             r["val_loss"], r["val_accuracy"], r["status"]] for r in summary["configs"]]
    return headers, rows
