"""The sweep directory: what it holds, who may use it, and which of its run directories
can be trusted.

    DIR/sweep.json     the settings and storage the sweep was made with, and its id
    DIR/sweep.lock     held by the one coordinator running the sweep
    DIR/study.journal  the Optuna study (unless --storage names a database)
    DIR/configs/NAME/  one run directory a config
    DIR/results.{json,csv,md}

Nothing is written before the whole command is validated; a directory that is not empty
is used only when its sweep.json records the same settings and storage.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import filelock

from handgrad.run.files import read_json, write_json
from handgrad.run.rundir import RunDir
from handgrad.run.sweep_spec import SweepSpec, config_key, settings, settings_differences

RECORD, LOCK = "sweep.json", "sweep.lock"
FORMAT = 1
LOCATION_KEYS = ("device", "data_dir", "download")  # where a run happens, not what it is


def mask_url(url: str | None) -> str | None:
    """The storage URL with any password replaced by ***."""
    if url is None:
        return None
    return re.sub(r"(://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)


def settings_json(spec: SweepSpec) -> dict[str, Any]:
    return json.loads(json.dumps(settings(spec)))


class SweepLock:
    """An exclusive lock on DIR/sweep.lock for the coordinator's lifetime (any platform)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / LOCK
        self.lock = filelock.FileLock(str(self.path), timeout=0)

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except filelock.Timeout:
            raise ValueError(f"{self.path.parent}: another sweep is running on this directory"
                             ) from None
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    """DIR/sweep.json, or None for a directory that may become a new sweep; ValueError for a
    directory that holds something else."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.exists():
        return None
    if not sweep_dir.is_dir():
        raise ValueError(f"--out {sweep_dir}: exists and is not a directory")
    path = sweep_dir / RECORD
    if path.exists():
        record = read_json(path)
        if not isinstance(record, dict) or record.get("format") != FORMAT or \
                not isinstance(record.get("settings"), dict):
            raise ValueError(f"{path}: not a handgrad sweep record; use another --out")
        return record
    others = sorted(p.name for p in sweep_dir.iterdir()
                    if p.name != LOCK and not p.name.startswith(f".{RECORD}."))
    if not others:
        return None
    what = "a training run" if {RunDir.CONFIG, RunDir.RESULTS} & set(others) else \
        "not a handgrad sweep"
    raise ValueError(f"--out {sweep_dir}: is {what} (it holds {', '.join(others[:4])}"
                     f"{', …' if len(others) > 4 else ''}); choose an empty or new directory")


def check_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict | None:
    """Refuse a directory that holds anything but a sweep of these settings and storage."""
    record = read_record(sweep_dir)
    if record is None:
        return None
    diff = settings_differences(record["settings"], settings_json(spec))
    if diff:
        raise ValueError(f"{sweep_dir}: holds a sweep with other settings ({'; '.join(diff)}); "
                         "use another --out, or the same settings to resume it")
    if record.get("storage") != mask_url(storage):
        was = record.get("storage") or "its own study.journal"
        raise ValueError(f"{sweep_dir}: this sweep keeps its study in {was}, not in "
                         f"{mask_url(storage) or 'a journal file'}; give the same --storage")
    return record


def write_record(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> dict[str, Any]:
    """DIR/sweep.json for a new sweep (the caller holds the lock and has checked the dir)."""
    record = {"format": FORMAT, "id": uuid.uuid4().hex, "storage": mask_url(storage),
              "settings": settings_json(spec)}
    write_json(Path(sweep_dir) / RECORD, record)
    return record


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
        for key in ("status", "val_loss", "val_accuracy", "train_loss"):
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
