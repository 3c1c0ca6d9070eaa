"""How results print: a line for `repr`, a few lines for `str`, a small table in a notebook.

`RunResult`, `Comparison` and a sweep's summary hold every epoch, the model and the test
confusion matrix; printing them shows what ran and how it ended, never a dump of all that.
"""

from __future__ import annotations

import html
from typing import Any

from handgrad.report.tables import (
    fixed_text,
    fmt,
    gap_table,
    html_table,
    sweep_table,
    text_table,
)

RUN_METRICS = ("epochs_completed", "train_loss", "val_loss", "val_accuracy", "test_loss",
               "test_accuracy")


def network(config, engine: bool = True) -> str:
    """'digits hidden 16-8 relu, sgd lr 0.01 momentum 0.9, batch 64, manual engine, float32'
    (momentum and weight decay when set)."""
    hidden = "hidden " + ("-".join(map(str, config.hidden)) or "none")
    opt = f"{config.optimizer} lr {config.lr:g}"
    if config.momentum:
        opt += f" momentum {config.momentum:g}"
    if config.weight_decay:
        opt += f" weight decay {config.weight_decay:g}"
    where = f"{config.engine} engine, " if engine else ""
    return (f"{config.dataset} {hidden} {config.activation}, {opt}, batch {config.batch_size}, "
            f"{where}{config.dtype}")


def run_line(result) -> str:
    """One line: status, what ran, the last validation and the test metrics."""
    s = result.summary()
    ended = f"{s['epochs_completed']}/{result.config.epochs} epochs"
    if s["val_loss"] is not None:
        ended += f", val loss {fmt(s['val_loss'])} acc {fmt(s['val_accuracy'])}"
    if s["test_accuracy"] is not None:
        ended += f", test acc {fmt(s['test_accuracy'])}"
    return f"<RunResult {result.status}: {network(result.config)}; {ended}>"


def run_text(result) -> str:
    s = result.summary()
    lines = [run_line(result), text_table(["metric", "value"], [[k, s[k]] for k in RUN_METRICS])]
    if result.message:
        lines.append(result.message)
    return "\n".join(lines)


def comparison_line(comparison) -> str:
    manual, autograd = comparison.manual, comparison.autograd
    return (f"<Comparison: {network(manual.config, engine=False)}; manual {manual.status}, "
            f"autograd {autograd.status}, {len(comparison.gaps())} epochs, largest loss gap "
            f"{fmt(comparison.max_gap())}>")


def sweep_line(summary: dict[str, Any]) -> str:
    sel = summary["selected"]
    if sel is None:
        chosen = "nothing selected (no config completed)"
    else:
        label = ", ".join(f"{k}={sel[k]}" for k in summary["swept"])
        chosen = f"selected {label}: test accuracy {fmt(sel['test_accuracy'])}"
    return (f"<SweepSummary: {len(summary['configs'])} configs, by {summary['select_by']}; "
            f"{chosen}>")


def sweep_text(summary: dict[str, Any]) -> str:
    return "\n".join(filter(None, [sweep_line(summary), fixed_text(summary),
                                    text_table(*sweep_table(summary))]))


def run_html(result) -> str:
    """The summary line, then the final metrics as a table (a notebook's rendering)."""
    s = result.summary()
    rows = [[k, s[k]] for k in RUN_METRICS]
    return f"<p>{html.escape(run_line(result))}</p>" + html_table(["metric", "value"], rows)


def comparison_html(comparison) -> str:
    return (f"<p>{html.escape(comparison_line(comparison))}</p>"
            + html_table(*gap_table(comparison.gaps())))


def sweep_html(summary: dict[str, Any]) -> str:
    fixed = fixed_text(summary)
    return (f"<p>{html.escape(sweep_line(summary))}</p>"
            + (f"<p>{html.escape(fixed)}</p>" if fixed else "") + html_table(*sweep_table(summary)))


class SweepSummary(dict):
    """A sweep's results, results.json's content: a plain dict (`["configs"]`,
    `["selected"]`, …) that prints as a short summary."""

    @property
    def selected(self) -> dict[str, Any] | None:
        return self["selected"]

    @property
    def configs(self) -> list[dict[str, Any]]:
        return self["configs"]

    def __repr__(self) -> str:
        return sweep_line(self)

    def __str__(self) -> str:
        return sweep_text(self)

    def _repr_html_(self) -> str:
        return sweep_html(self)
