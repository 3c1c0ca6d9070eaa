"""Sweep results: every config's metrics, selection on validation, one test evaluation,
and the tables written as results.json, results.csv and results.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from handgrad.data import Dataset
from handgrad.report.tables import fixed_text, fmt_setting, markdown_table
from handgrad.report.tables import sweep_table as table
from handgrad.run.evaluate import evaluate_run
from handgrad.run.files import atomic_write_bytes, read_json, write_csv, write_json
from handgrad.run.rundir import RunDir
from handgrad.run.sweep_dir import run_dir_problem
from handgrad.run.sweep_spec import (
    SweepError,
    SweepSpec,
    config_key,
    fixed_settings,
    hyperparameters,
)
from handgrad.run.sweep_study import done, invalidate

METRICS = ("status", "train_loss", "val_loss", "val_accuracy")


def collect(sweep_dir: Path, sweep_id: str, spec: SweepSpec, study: optuna.Study,
            select_by: str, dataset: Dataset | None = None) -> dict[str, Any]:
    """Read every config's results, select on validation, evaluate the selected on test.
    A result whose run directory is broken is set aside (the next run re-runs it)."""
    finished = done(study)
    rows, columns = [], spec.table_columns()
    for values in spec.configs():
        trial = finished.get(config_key(values))
        if trial is None:
            raise SweepError(f"config {config_key(values)} has no result yet (it is running "
                             "in another process or on another machine, or it failed); rerun "
                             "the same command to finish the sweep")
        rows.append({**hyperparameters(spec.config_for(values), columns), **values,
                     **_result(sweep_dir, sweep_id, spec, values, trial, study)})
    selected = select(rows, select_by)
    summary = {"select_by": select_by, "swept": list(spec.configs()[0]),
               "hyperparameters": columns, "fixed": fixed_settings(spec, columns),
               "configs": rows, "selected": None}
    if selected is not None:
        summary["selected"] = {**selected, **_test_metrics(sweep_dir, selected, dataset)}
    write_results(sweep_dir, summary)
    return summary


def locate(sweep_dir: Path, sweep_id: str, trial: FrozenTrial) -> Path | None:
    """The run directory of a finished trial: in this sweep directory when this sweep ran
    it, else where the other machine wrote it if that is readable here (a shared file
    system), else None."""
    attrs = trial.user_attrs
    if attrs.get("sweep_id", "") in ("", sweep_id):
        return Path(sweep_dir) / attrs.get("run_dir", "")
    elsewhere = Path(attrs.get("out", "")) / attrs.get("run_dir", "")
    return elsewhere if attrs.get("out") and elsewhere.is_dir() else None


def _result(sweep_dir: Path, sweep_id: str, spec: SweepSpec, values: dict[str, Any],
            trial: FrozenTrial, study: optuna.Study) -> dict[str, Any]:
    run_dir = locate(sweep_dir, sweep_id, trial)
    if run_dir is None:  # on another machine: the study holds its metrics
        attrs = trial.user_attrs
        return {**{k: attrs.get(k) for k in METRICS},
                "run_dir": f"{attrs.get('host')}:{Path(attrs['out']) / attrs['run_dir']}"}
    problem = run_dir_problem(run_dir, spec, values, trial.user_attrs)
    if problem is not None:
        invalidate(study, [trial])
        raise SweepError(f"{problem}; rerun the same command to re-run config "
                         f"{config_key(values)}")
    res = RunDir(run_dir).read_results()
    return {**{k: res[k] for k in METRICS}, "run_dir": str(run_dir)}


def _test_metrics(sweep_dir: Path, selected: dict[str, Any],
                  dataset: Dataset | None) -> dict[str, Any]:
    """The selected run's test metrics: from an earlier results.json when that selected the
    same run (the test set is evaluated once per selection), else evaluated now."""
    try:
        before = read_json(sweep_dir / "results.json")["selected"]
        if all(before[k] == selected[k] for k in ("run_dir", *METRICS)) and \
                before["test_loss"] is not None:
            return {k: before[k] for k in TEST_KEYS}
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no earlier results, or not readable: evaluate
    run_dir = Path(selected["run_dir"])
    if not run_dir.is_dir():  # on another machine
        return {"test_loss": None, "test_accuracy": None, "confusion_matrix": None,
                "class_names": None}
    return evaluate_on_test(run_dir, dataset)


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
    names = RunDir(run_dir).read_record()["class_names"]
    return {"test_loss": ev.loss, "test_accuracy": ev.accuracy, "confusion_matrix": ev.confusion,
            "class_names": names}


def write_results(sweep_dir: Path, summary: dict[str, Any]) -> None:
    headers, rows = table(summary)
    write_json(sweep_dir / "results.json", summary)
    fixed = {k: fmt_setting(k, v) for k, v in summary.get("fixed", {}).items()}
    write_csv(sweep_dir / "results.csv", [{**fixed, **r} for r in summary["configs"]],
              [*summary.get("hyperparameters", summary["swept"]), *fixed, "status",
               "train_loss", "val_loss", "val_accuracy", "run_dir"])
    sel = summary["selected"]
    lines = [f"# Sweep results\n\nSelected by **{summary['select_by']}** on the validation "
             "split (never training loss); the selected config (*) was evaluated once on the "
             "test set.\n", f"{fixed_text(summary)}\n", markdown_table(headers, rows), ""]
    if sel and sel["test_loss"] is None:
        lines.append(f"Selected: {', '.join(f'{k}={sel[k]}' for k in summary['swept'])}; its run "
                     f"directory is on another machine ({sel['run_dir']}): rerun the sweep there "
                     "to evaluate it on the test set.\n")
    elif sel:
        lines.append(f"Selected: {', '.join(f'{k}={sel[k]}' for k in summary['swept'])}: "
                     f"test loss {sel['test_loss']:.4f}, test accuracy "
                     f"{sel['test_accuracy']:.4f}.\n")
    else:
        lines.append("No config completed: nothing selected.\n")
    atomic_write_bytes(sweep_dir / "results.md", "\n".join(lines).encode())
