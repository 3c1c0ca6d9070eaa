"""The sweep folder: what it holds, who may use it, and which run directories can be trusted.

    DIR/sweep.json     the settings and storage the sweep was made with, and its id
    DIR/sweep.lock     held by the one coordinator running the sweep
    DIR/study.journal  the Optuna study (unless `storage` names a database)
    DIR/configs/NAME/  one run directory a config
    DIR/results.{json,csv}

A folder that is not empty is used only when its sweep.json records the same settings and
storage; nothing is written before the whole sweep is validated.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import filelock

from handgrad.engine.errors import SettingError
from handgrad.run.files import read_json, write_json
from handgrad.run.rundir import RunDir
from handgrad.run.sweep.spec import METRICS, SweepSpec, config_key, settings, settings_differences

RECORD, LOCK, FORMAT = "sweep.json", "sweep.lock", 1
LOCATION_KEYS = ("device", "data_dir", "download")  # where a run happens, not what it is
_PASSWORD = r"(://[^/?#@:\s]*:)([^/?#@\s]*)@"  # scheme://user:PASSWORD@host


def mask_url(text: str | None, url: str | None = None) -> str | None:
    """`text` with the password of every URL in it shown as ***, and also every other
    occurrence of `url`'s password (a driver's error message may quote it)."""
    if text is None:
        return None
    password = re.search(_PASSWORD, url or "")
    if password and password.group(2):
        text = text.replace(password.group(2), "***")
    return re.sub(_PASSWORD, r"\1***@", text)


def settings_json(spec: SweepSpec) -> dict[str, Any]:
    return json.loads(json.dumps(settings(spec)))


def lock(sweep_dir: Path) -> filelock.FileLock:
    """The coordinator's exclusive lock on DIR/sweep.lock (acquire with `acquire_lock`)."""
    return filelock.FileLock(str(Path(sweep_dir) / LOCK), timeout=0)


def acquire_lock(held: filelock.FileLock) -> None:
    path = Path(held.lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        held.acquire()
    except filelock.Timeout:
        raise ValueError(f"{path.parent}: another sweep is running on this directory") from None


def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    """DIR/sweep.json; None for a folder that may become a new sweep; ValueError for a
    folder that holds something else."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.exists():
        return None
    if not sweep_dir.is_dir():
        raise SettingError(f"out {sweep_dir}: exists and is not a directory", "out")
    if (sweep_dir / RECORD).exists():
        record = read_json(sweep_dir / RECORD)
        if not isinstance(record, dict) or record.get("format") != FORMAT or \
                not isinstance(record.get("settings"), dict):
            raise SettingError(f"{sweep_dir / RECORD}: not a handgrad sweep record; choose "
                               "another out", "out")
        return record
    others = sorted(p.name for p in sweep_dir.iterdir()
                    if p.name != LOCK and not p.name.startswith(f".{RECORD}."))
    if not others:
        return None
    what = "a training run" if {RunDir.CONFIG, RunDir.RESULTS} & set(others) else \
        "not a handgrad sweep"
    raise SettingError(f"out {sweep_dir}: is {what} (it holds {', '.join(others[:4])}"
                       f"{', …' if len(others) > 4 else ''}); choose an empty or new directory",
                       "out")


def check_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict | None:
    """Refuse a folder that holds anything but a sweep of these settings and storage."""
    record = read_record(sweep_dir)
    if record is None:
        return None
    diff = settings_differences(record["settings"], settings_json(spec))
    if diff:
        raise SettingError(f"{sweep_dir}: holds a sweep with other settings "
                           f"({'; '.join(diff)}); choose another out, or the same settings to "
                           "resume it", "out")
    if record.get("storage") != mask_url(storage):
        was = record.get("storage") or "its own study.journal"
        raise SettingError(f"{sweep_dir}: this sweep keeps its study in {was}, not in "
                           f"{mask_url(storage) or 'a journal file'}; give the same storage",
                           "storage")
    return record


def write_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict[str, Any]:
    """DIR/sweep.json of a new sweep (the caller holds the lock and has checked the folder)."""
    record = {"format": FORMAT, "id": uuid.uuid4().hex, "storage": mask_url(storage),
              "settings": settings_json(spec)}
    write_json(Path(sweep_dir) / RECORD, record)
    return record


def locate(sweep_dir: Path, sweep_id: str, attrs: dict[str, Any]) -> Path | None:
    """The run directory of a finished trial (its user attributes): in this folder when this
    sweep ran it, else where another machine wrote it if readable here (a shared file
    system), else None."""
    if attrs.get("sweep_id", "") in ("", sweep_id):
        return Path(sweep_dir) / attrs.get("run_dir", "")
    elsewhere = Path(attrs.get("out", "")) / attrs.get("run_dir", "")
    return elsewhere if attrs.get("out") and elsewhere.is_dir() else None


def run_dir_problem(run_dir: Path, spec: SweepSpec, values: dict[str, Any],
                    attrs: dict[str, Any]) -> str | None:
    """Why a finished config's run directory cannot be reported as its result (None if it
    can): missing, unreadable or altered files (the weights checked against their sha256),
    other settings, or metrics that are not the ones the study recorded."""
    run = RunDir(run_dir)
    try:
        record, result = run.read_record(), run.read_results()
        if _what(record["config"]) != _what(spec.config_for(values).to_dict()):
            return f"{run.file(RunDir.CONFIG)}: not the settings of config {config_key(values)}"
        if result["status"] not in ("completed", "diverged"):
            return f"{run.file(RunDir.RESULTS)}: status {result['status']!r} is not final"
        if result["status"] == "completed":
            run.load_model()  # shapes, metadata and sha256 of the weights
        for key in METRICS:
            if key in attrs and attrs[key] != result.get(key):
                return f"{run.file(RunDir.RESULTS)}: {key} is not the one the study recorded"
    except (OSError, ValueError) as e:
        return " ".join(str(e).split())
    return None


def _what(config: Any) -> Any:
    """A config as JSON without where it ran."""
    if not isinstance(config, dict):
        return config
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in LOCATION_KEYS}
