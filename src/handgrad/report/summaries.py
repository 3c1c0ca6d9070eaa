"""How results print: a line for `repr`, a few lines for `str`, a small table in a notebook.

The run layer's results (`RunResult`, `Comparison`, a sweep's summary dict) are plain data;
`printed(result)`, which the API applies to what it returns, gives the same data in a
subclass that prints what ran and how it ended, never a dump of every epoch, the model and
the confusion matrix (`ReproduceResult`'s: `handgrad.report.markdown.PrintedReproduce`).
"""

from __future__ import annotations

import dataclasses
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
from handgrad.run.compare import Comparison
from handgrad.run.run_result import RunResult

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


class PrintedRun(RunResult):
    """A `RunResult` that prints as a summary (what `handgrad.train` and `load_run` return)."""

    __repr__, __str__, _repr_html_ = run_line, run_text, run_html


class PrintedComparison(Comparison):
    """A `Comparison` that prints as a summary (what `handgrad.compare` returns)."""

    __repr__, _repr_html_ = comparison_line, comparison_html


class SweepSummary(dict):
    """A sweep's results, results.json's content: a plain dict (`["configs"]`,
    `["selected"]`, …) that prints as a short summary."""

    @property
    def selected(self) -> dict[str, Any] | None:
        return self["selected"]

    @property
    def configs(self) -> list[dict[str, Any]]:
        return self["configs"]

    __repr__, __str__, _repr_html_ = sweep_line, sweep_text, sweep_html


def printed(result: Any) -> Any:
    """`result` of the run layer (a `RunResult`, `Comparison` or a sweep's summary dict) as
    the API returns it: the same data, in the class above that prints it."""
    if isinstance(result, RunResult):
        return copy_as(PrintedRun, result)
    if isinstance(result, Comparison):
        return PrintedComparison(printed(result.manual), printed(result.autograd))
    if isinstance(result, dict):
        return SweepSummary(result)
    raise TypeError(f"no printed form for {type(result).__name__}")


def copy_as(cls: type, result: Any, **changes: Any) -> Any:
    """The dataclass `result` as an instance of its subclass `cls` (fields shared, not
    copied), with `changes`."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return cls(**{**fields, **changes})
