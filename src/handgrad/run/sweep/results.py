"""A sweep's results: every config's metrics, selection on validation (never training loss),
one evaluation of the selected config on the test set, written as results.json and
results.csv. Rendering them (results.md, the terminal's table) is `handgrad.report.sweep`'s."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from handgrad.data import Dataset
from handgrad.run.evaluate import evaluate_run
from handgrad.run.files import read_json, write_csv, write_json
from handgrad.run.rundir import RunDir
from handgrad.run.sweep.folder import locate, run_dir_problem
from handgrad.run.sweep.spec import (
    METRICS,
    SweepError,
    SweepSpec,
    config_key,
    fixed_settings,
    hyperparameters,
    setting_text,
)
from handgrad.run.sweep.study import INVALID, done

TEST_KEYS = ("test_loss", "test_accuracy", "confusion_matrix", "class_names")


def collect(sweep_dir: Path, sweep_id: str, spec: SweepSpec, study: optuna.Study,
            select_by: str, dataset: Dataset | None = None) -> dict[str, Any]:
    """Every config's result, the selected one evaluated on test; results.{json,csv} written.
    A result whose run directory is broken is set aside in the study (a rerun re-runs it)."""
    finished, columns, rows = done(study), spec.table_columns(), []
    for values in spec.configs():
        trial = finished.get(config_key(values))
        if trial is None:
            raise SweepError(f"config {config_key(values)} has no result yet (it is running "
                             "in another process or on another machine, or it failed); rerun "
                             "the same command to finish the sweep")
        rows.append({**hyperparameters(spec.config_for(values), columns), **values,
                     **_result(sweep_dir, sweep_id, spec, values, trial, study)})
    summary = {"select_by": select_by, "swept": list(spec.configs()[0]),
               "hyperparameters": columns, "fixed": fixed_settings(spec, columns),
               "configs": rows, "selected": select(rows, select_by)}
    if summary["selected"] is not None:
        summary["selected"] |= _test_metrics(sweep_dir, summary["selected"], dataset)
    write_results(sweep_dir, summary)
    return summary


def _result(sweep_dir: Path, sweep_id: str, spec: SweepSpec, values: dict[str, Any],
            trial: FrozenTrial, study: optuna.Study) -> dict[str, Any]:
    attrs = trial.user_attrs
    run_dir = locate(sweep_dir, sweep_id, attrs)
    if run_dir is None:  # on another machine: the study holds its metrics
        return {**{k: attrs.get(k) for k in METRICS},
                "run_dir": f"{attrs.get('host')}:{Path(attrs['out']) / attrs['run_dir']}"}
    problem = run_dir_problem(run_dir, spec, values, attrs)
    if problem is not None:
        study.set_user_attr(INVALID, sorted({*study.user_attrs.get(INVALID, []), trial.number}))
        raise SweepError(f"{problem}; rerun the same command to re-run config "
                         f"{config_key(values)}")
    res = RunDir(run_dir).read_results()
    return {**{k: res[k] for k in METRICS}, "run_dir": str(run_dir)}


def select(rows: list[dict[str, Any]], select_by: str) -> dict[str, Any] | None:
    """The completed config with the lowest validation loss (or highest accuracy, ties
    broken by the lower validation loss)."""
    ok = [r for r in rows if r["status"] == "completed" and r["val_loss"] is not None
          and math.isfinite(r["val_loss"])]
    if not ok:
        return None
    if select_by == "val_accuracy":
        return dict(min(ok, key=lambda r: (-r["val_accuracy"], r["val_loss"])))
    return dict(min(ok, key=lambda r: r["val_loss"]))


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
    if not Path(selected["run_dir"]).is_dir():  # on another machine
        return dict.fromkeys(TEST_KEYS)
    return evaluate_on_test(Path(selected["run_dir"]), dataset)


def evaluate_on_test(run_dir: Path, dataset: Dataset | None = None) -> dict[str, Any]:
    """Test metrics of a run's saved weights (on `dataset`, or its data loaded anew)."""
    ev = evaluate_run(run_dir, data=dataset)
    names = RunDir(run_dir).read_record()["class_names"]
    return {"test_loss": ev.loss, "test_accuracy": ev.accuracy, "confusion_matrix": ev.confusion,
            "class_names": names}


def write_results(sweep_dir: Path, summary: dict[str, Any]) -> None:
    """results.json (the summary) and results.csv (a row a config, the shared settings in
    every row)."""
    write_json(sweep_dir / "results.json", summary)
    fixed = {k: setting_text(k, v) for k, v in summary["fixed"].items()}
    write_csv(sweep_dir / "results.csv", [{**fixed, **r} for r in summary["configs"]],
              [*summary["hyperparameters"], *fixed, *METRICS, "run_dir"])
