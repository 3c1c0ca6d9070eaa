"""Sweep results: every config's metrics, selection on validation, one test evaluation,
and the tables written as results.json, results.csv and results.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from handgrad.data import Dataset
from handgrad.report.tables import markdown_table
from handgrad.report.tables import sweep_table as table
from handgrad.run.evaluate import evaluate_run
from handgrad.run.rundir import (
    CONFIG,
    RESULTS,
    atomic_write_bytes,
    read_json,
    write_csv,
    write_json,
)
from handgrad.run.sweep_spec import (
    SweepError,
    SweepSpec,
    config_key,
    hyperparameters,
    trials_by_key,
)


def collect(sweep_dir: Path, spec: SweepSpec, study: optuna.Study, select_by: str,
            dataset: Dataset | None = None) -> dict[str, Any]:
    """Read every config's results, select on validation, evaluate the selected on test."""
    by_key = trials_by_key(study)
    rows, columns = [], spec.table_columns()
    for values in spec.configs():
        done = [t for t in by_key.get(config_key(values), []) if t.state == TrialState.COMPLETE]
        if not done:
            raise SweepError(f"config {config_key(values)} has no result; rerun the sweep")
        run_dir = sweep_dir / done[0].user_attrs["run_dir"]
        res = read_json(run_dir / RESULTS)
        config = spec.config_for(values)
        rows.append({**hyperparameters(config, columns), **values, "status": res["status"],
                     "train_loss": res["train_loss"], "val_loss": res["val_loss"],
                     "val_accuracy": res["val_accuracy"],
                     "run_dir": str(run_dir)})
    selected = select(rows, select_by)
    summary = {"select_by": select_by, "swept": list(spec.configs()[0]),
               "hyperparameters": columns,
               "configs": rows, "selected": None}
    if selected is not None:
        summary["selected"] = {**selected, **_test_metrics(sweep_dir, selected, dataset)}
    write_results(sweep_dir, summary)
    return summary


def _test_metrics(sweep_dir: Path, selected: dict[str, Any],
                  dataset: Dataset | None) -> dict[str, Any]:
    """The selected run's test metrics: from an earlier results.json when that selected the
    same run (the test set is evaluated once per selection), else evaluated now."""
    previous = sweep_dir / "results.json"
    if previous.exists():
        before = (read_json(previous) or {}).get("selected") or {}
        if before.get("run_dir") == selected["run_dir"] and "test_loss" in before:
            return {k: before[k] for k in TEST_KEYS}
    return evaluate_on_test(Path(selected["run_dir"]), dataset)


def select(rows: list[dict[str, Any]], select_by: str) -> dict[str, Any] | None:
    """The completed config with the lowest validation loss (or highest accuracy, ties
    broken by the lower validation loss)."""
    ok = [r for r in rows if r["status"] == "completed" and r["val_loss"] is not None
          and math.isfinite(r["val_loss"])]
    if not ok:
        return None
    if select_by == "val_accuracy":
        return min(ok, key=lambda r: (-r["val_accuracy"], r["val_loss"]))
    return min(ok, key=lambda r: r["val_loss"])


TEST_KEYS = ("test_loss", "test_accuracy", "confusion_matrix", "class_names")


def evaluate_on_test(run_dir: Path, dataset: Dataset | None = None) -> dict[str, Any]:
    """Test metrics of a run's saved weights (on `dataset`, or its data loaded anew)."""
    ev = evaluate_run(run_dir, data=dataset)
    names = read_json(Path(run_dir) / CONFIG)["class_names"]
    return {"test_loss": ev.loss, "test_accuracy": ev.accuracy, "confusion_matrix": ev.confusion,
            "class_names": names}


def write_results(sweep_dir: Path, summary: dict[str, Any]) -> None:
    headers, rows = table(summary)
    write_json(sweep_dir / "results.json", summary)
    write_csv(sweep_dir / "results.csv", summary["configs"],
              [*summary.get("hyperparameters", summary["swept"]), "status", "train_loss",
               "val_loss", "val_accuracy", "run_dir"])
    sel = summary["selected"]
    lines = [f"# Sweep results\n\nSelected by **{summary['select_by']}** on the validation "
             "split (never training loss); the selected config (*) was evaluated once on the "
             "test set.\n", markdown_table(headers, rows), ""]
    if sel:
        lines.append(f"Selected: {', '.join(f'{k}={sel[k]}' for k in summary['swept'])}: "
                     f"test loss {sel['test_loss']:.4f}, test accuracy "
                     f"{sel['test_accuracy']:.4f}.\n")
    else:
        lines.append("No config completed: nothing selected.\n")
    atomic_write_bytes(sweep_dir / "results.md", "\n".join(lines).encode())
