"""A sweep's results (results.json's content) as text: results.md beside results.json, and
what the terminal shows after `handgrad sweep`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from handgrad.report.tables import (
    confusion_table,
    fixed_text,
    fmt,
    markdown_table,
    sweep_table,
    text_table,
)
from handgrad.run.files import atomic_write_bytes


def results_markdown(summary: Mapping[str, Any]) -> str:
    """results.md: how the config was selected, the shared settings, every config, and the
    selected config's test metrics."""
    sel = summary["selected"]
    lines = [f"# Sweep results\n\nSelected by **{summary['select_by']}** on the validation "
             "split (never training loss); the selected config (*) was evaluated once on the "
             "test set.\n", f"{fixed_text(summary)}\n", markdown_table(*sweep_table(summary)), ""]
    if sel is None:
        lines.append("No config completed: nothing selected.\n")
        return "\n".join(lines)
    chosen = ", ".join(f"{k}={sel[k]}" for k in summary["swept"])
    if sel["test_loss"] is None:
        lines.append(f"Selected: {chosen}; its run directory is on another machine "
                     f"({sel['run_dir']}): rerun the sweep there to evaluate it on the test "
                     "set.\n")
    else:
        lines.append(f"Selected: {chosen}: test loss {sel['test_loss']:.4f}, test accuracy "
                     f"{sel['test_accuracy']:.4f}.\n")
    return "\n".join(lines)


def write_results_md(sweep_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    path = Path(sweep_dir) / "results.md"
    atomic_write_bytes(path, results_markdown(summary).encode())
    return path


def terminal_text(summary: Mapping[str, Any]) -> str:
    """The terminal's view: every config, the shared settings, the selection and its test
    metrics with the confusion matrix."""
    lines = [text_table(*sweep_table(summary)), fixed_text(summary),
             f"selected by {summary['select_by']} (* above); training loss is never used"]
    sel = summary["selected"]
    if sel is None:
        lines.append("no config completed: nothing to evaluate on the test set")
    elif sel["test_loss"] is None:
        lines.append(f"the selected config ran on another machine ({sel['run_dir']}): rerun "
                     "the sweep there to evaluate it on the test set")
    else:
        lines += [f"test loss {fmt(sel['test_loss'])}, test accuracy "
                  f"{fmt(sel['test_accuracy'])}",
                  text_table(*confusion_table(sel["confusion_matrix"], sel["class_names"]))]
    return "\n".join(lines)
