"""The sweep folder: what it holds, who may use it, which run directories can be trusted, and
the results, selected on validation (never training loss) with one evaluation on the test set.

    DIR/sweep.json          the settings and storage the sweep was made with, and its id
    DIR/sweep.lock          held by the one coordinator running the sweep
    DIR/study.journal       the Optuna study (unless `storage` names a database)
    DIR/configs/NAME/       one run directory a config
    DIR/results.{json,csv}  every config's metrics, the selected one's test metrics

A folder that is not empty is used only when its sweep.json records the same settings and
storage. Rendering the results (results.md, the terminal) is `handgrad.report.sweep`'s.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import filelock
import optuna

from handgrad.data import DEFAULT_CLASSES, Dataset
from handgrad.engine.errors import SettingError
from handgrad.run.config import TrainConfig
from handgrad.run.evaluate import evaluate_run
from handgrad.run.files import read_json, write_csv, write_json
from handgrad.run.rundir import RunDir
from handgrad.run.sweep.spec import (
    LOCATION_KEYS,
    METRICS,
    SweepError,
    SweepSpec,
    config_key,
    mask_url,
    refuse_other_settings,
    setting_text,
    settings,
)
from handgrad.run.sweep.study import done, set_invalid

RECORD, LOCK, FORMAT = "sweep.json", "sweep.lock", 1
HYPERPARAMETERS = ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "hidden")
TEST_KEYS = ("test_loss", "test_accuracy", "confusion_matrix", "class_names")


def acquire_lock(sweep_dir: Path) -> filelock.FileLock:
    """DIR/sweep.lock held: ValueError if another coordinator holds it."""
    held = filelock.FileLock(str(Path(sweep_dir) / LOCK), timeout=0)
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    try:
        held.acquire()
    except filelock.Timeout:
        raise ValueError(f"{sweep_dir}: another sweep is running on this directory") from None
    return held


def check_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict | None:
    """DIR/sweep.json if it records these settings and storage; None for a folder that may
    become a new sweep; SettingError for a folder that holds anything else."""
    if not sweep_dir.exists():
        return None
    if not sweep_dir.is_dir():
        raise SettingError(f"out {sweep_dir}: exists and is not a directory", "out")
    if not (sweep_dir / RECORD).exists():
        others = sorted(p.name for p in sweep_dir.iterdir()
                        if p.name != LOCK and not p.name.startswith(f".{RECORD}."))
        if not others:
            return None
        what = "a training run" if {RunDir.CONFIG, RunDir.RESULTS} & set(others) else \
            "not a handgrad sweep"
        raise SettingError(f"out {sweep_dir}: is {what} (it holds {', '.join(others[:4])}"
                           f"{', …' if len(others) > 4 else ''}); choose an empty or new "
                           "directory", "out")
    record = read_json(sweep_dir / RECORD)
    if not isinstance(record, dict) or record.get("format") != FORMAT or \
            not isinstance(record.get("settings"), dict):
        raise SettingError(f"{sweep_dir / RECORD}: not a handgrad sweep record; choose "
                           "another out", "out")
    refuse_other_settings(str(sweep_dir), record["settings"], spec)
    if record.get("storage") != mask_url(storage):
        was = record.get("storage") or "its own study.journal"
        raise SettingError(f"{sweep_dir}: this sweep keeps its study in {was}, not in "
                           f"{mask_url(storage) or 'a journal file'}; give the same storage",
                           "storage")
    return record


def write_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict[str, Any]:
    """DIR/sweep.json of a new sweep (with the lock held and the folder checked)."""
    record = {"format": FORMAT, "id": uuid.uuid4().hex, "storage": mask_url(storage),
              "settings": settings(spec)}
    write_json(sweep_dir / RECORD, record)
    return record


def result_row(sweep_dir: Path, sweep_id: str, spec: SweepSpec, values: dict[str, Any],
               attrs: dict[str, Any]) -> dict[str, Any]:
    """A finished config's metrics and run_dir, from its trial's user attributes `attrs`
    where it ran on another machine. ValueError saying why its run directory cannot be
    reported: missing, unreadable or altered files (the weights checked against their
    sha256), other settings, or metrics that are not the ones the study recorded."""
    run = RunDir(sweep_dir / attrs.get("run_dir", ""))
    if attrs.get("sweep_id", "") not in ("", sweep_id):  # run by another sweep folder
        run = RunDir(Path(attrs.get("out", "")) / attrs.get("run_dir", ""))
        if not attrs.get("out") or not run.path.is_dir():  # on another machine
            return {**{k: attrs.get(k) for k in METRICS},
                    "run_dir": f"{attrs.get('host')}:{Path(attrs['out']) / attrs['run_dir']}"}
    try:
        record, result = run.read_record(), run.read_results()
        if _what(record["config"]) != _what(spec.config_for(values).to_dict()):
            raise ValueError(f"{run.file(RunDir.CONFIG)}: not the settings of config "
                             f"{config_key(values)}")
        if result["status"] not in ("completed", "diverged"):
            raise ValueError(f"{run.file(RunDir.RESULTS)}: status {result['status']!r} is not "
                             "final")
        if result["status"] == "completed":
            run.load_model()  # shapes, metadata and sha256 of the weights
        for key in METRICS:
            if key in attrs and attrs[key] != result.get(key):
                raise ValueError(f"{run.file(RunDir.RESULTS)}: {key} is not the one the "
                                 "study recorded")
    except (OSError, ValueError) as e:  # read_record and read_results check the files
        raise ValueError(" ".join(str(e).split())) from None
    return {**{k: result[k] for k in METRICS}, "run_dir": str(run.path)}


def _what(config: Any) -> Any:
    """A config as JSON without where it ran."""
    if not isinstance(config, dict):
        return config
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in LOCATION_KEYS}


def collect(sweep_dir: Path, sweep_id: str, spec: SweepSpec, study: optuna.Study,
            select_by: str, dataset: Dataset | None = None) -> dict[str, Any]:
    """Every config's result, the selected one evaluated on test; results.{json,csv} written.
    A result whose run directory is broken is set aside in the study (a rerun re-runs it)."""
    (columns, fixed), finished, rows = _table(spec), done(study), []
    for values in spec.configs():
        trial = finished.get(config_key(values))
        if trial is None:
            raise SweepError(f"config {config_key(values)} has no result yet (it is running "
                             "in another process or on another machine, or it failed); rerun "
                             "the same command to finish the sweep")
        try:
            result = result_row(sweep_dir, sweep_id, spec, values, trial.user_attrs)
        except ValueError as e:
            set_invalid(study, [trial.number])
            raise SweepError(f"{e}; rerun the same command to re-run config "
                             f"{config_key(values)}") from None
        rows.append({**_shown(spec.config_for(values), columns), **values, **result})
    ok = [r for r in rows if r["status"] == "completed" and r["val_loss"] is not None
          and math.isfinite(r["val_loss"])]
    order = {"val_loss": lambda r: r["val_loss"],  # accuracy ties: the lower loss
             "val_accuracy": lambda r: (-r["val_accuracy"], r["val_loss"])}[select_by]
    selected = dict(min(ok, key=order)) if ok else None
    if selected is not None:
        selected |= _test_metrics(sweep_dir, selected, dataset)
    summary = {"select_by": select_by, "swept": list(spec.configs()[0]),
               "hyperparameters": columns, "fixed": fixed, "configs": rows,
               "selected": selected}
    write_json(sweep_dir / "results.json", summary)
    cells = {k: setting_text(k, v) for k, v in fixed.items()}
    write_csv(sweep_dir / "results.csv", [{**cells, **r} for r in rows],
              [*columns, *cells, *METRICS, "run_dir"])
    return summary


def _table(spec: SweepSpec) -> tuple[list[str], dict[str, Any]]:
    """The hyperparameters the results table shows (betas and nesterov where some config
    uses them), and the settings every config shares that it does not show."""
    configs = [spec.config_for(v) for v in spec.configs()]
    columns = [*HYPERPARAMETERS, *[name for name, used in (
        ("betas", any(c.optimizer != "sgd" for c in configs)),
        ("nesterov", any(c.nesterov for c in configs))) if used]]
    fixed = {k: v for k, v in settings(spec)["base"].items()
             if k not in (*columns, "betas") and (k != "extra" or v)}
    if fixed.get("classes") is None and fixed.get("dataset") in DEFAULT_CLASSES:
        fixed["classes"] = list(DEFAULT_CLASSES[fixed["dataset"]])  # what was trained on
    return columns, fixed


def _shown(config: TrainConfig, columns: list[str]) -> dict[str, Any]:
    """`config`'s values of `columns` as the table shows them: hidden as '16,8', betas
    None for SGD."""
    values = {k: getattr(config, k) for k in columns}
    values["hidden"] = ",".join(map(str, config.hidden))
    if "betas" in columns:
        values["betas"] = (None if config.optimizer == "sgd"
                           else ",".join(f"{b:g}" for b in config.betas))
    return values


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
    return {"test_loss": ev.loss, "test_accuracy": ev.accuracy, "confusion_matrix": ev.confusion,
            "class_names": RunDir(run_dir).read_record()["class_names"]}
