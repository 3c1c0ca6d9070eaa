"""The Optuna side of a sweep: storage, study, and which trials hold a result.

The study lives in a journal file in the sweep directory (Optuna's `JournalStorage` with a
file backend, safe for processes on one machine), or in a database given by `storage` (then
workers on several machines share it). Each sweep has its own study, named after the
fingerprint of its settings, so that one database holds many sweeps. Optuna's facts this
module copes with:

- GridSampler counts a failed trial as visited and never retries it, and journal storage has
  no heartbeat, so a worker that dies leaves its trial RUNNING forever. The coordinator holds
  `sweep.lock` while it runs; a coordinator that acquires it knows every RUNNING trial of a
  file-backed study is dead, marks it FAIL and enqueues its config again (with a database,
  Optuna's heartbeat fails stale trials instead, and they are enqueued the same way).
- A finished trial cannot be changed. A result found broken on disk is listed in the study's
  `INVALID` attribute instead, and its config is enqueued again.
- An exhausted grid re-evaluates a random point if asked again, so workers never call
  `optimize` open-ended: each asks for one trial at a time while some config still lacks a
  result, and a trial whose config is already done or taken is pruned before any training.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from handgrad.run.sweep_dir import mask_url, settings_json
from handgrad.run.sweep_spec import (
    SweepError,
    SweepSpec,
    config_key,
    fingerprint,
    settings_differences,
)

JOURNAL = "study.journal"
DATABASES = ("sqlite:", "postgres", "mysql")  # URL schemes of the databases Optuna can use
SETTINGS = "handgrad_settings"  # study user attribute: the sweep_spec.settings it was made with
INVALID = "handgrad_invalid"    # study user attribute: numbers of trials whose result is broken
HEARTBEAT = (60, 180)  # seconds: Optuna's heartbeat interval and grace period on a database


def study_name(spec: SweepSpec) -> str:
    return f"handgrad-sweep-{fingerprint(spec)}"


def open_storage(sweep_dir: Path, storage: str | None, heartbeat: tuple[int, int] = HEARTBEAT):
    if storage is None:
        return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))
    url = _database_url(storage)
    with warnings.catch_warnings():  # heartbeats are marked experimental; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        interval, grace = heartbeat
        # SQLite: writers wait for each other up to 60 s, not 5 s, before "database is locked"
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=interval,
                          grace_period=grace)


def _database_url(url: str) -> str:
    """The URL SQLAlchemy gets: postgresql://… with the PostgreSQL driver that is installed
    (SQLAlchemy's default is psycopg2 before 2.1, psycopg after); ValueError if `url` is not
    a database URL."""
    if not url.startswith(DATABASES):
        raise ValueError(f"cannot use --storage {mask_url(url)!r}: give a database URL "
                         "(postgresql://, mysql://, sqlite:///)")
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    raise ValueError(f"cannot use --storage {mask_url(url)!r}: no PostgreSQL driver is "
                     "installed; pip install 'handgrad[postgres]'")


def check_storage(storage: str, heartbeat: tuple[int, int] = HEARTBEAT) -> None:
    """Open the database once, so that a bad URL is a one-line error before any work; the
    password never appears in the message."""
    _database_url(storage)
    try:
        optuna.storages.get_storage(open_storage(Path("."), storage, heartbeat))
    except Exception as e:  # sqlalchemy and the drivers raise many types
        raise ValueError(f"cannot use --storage {mask_url(storage)!r}: "
                         f"{_masked(e, storage)}") from None


@contextlib.contextmanager
def storage_errors(storage: str | None) -> Iterator[None]:
    """A database that fails mid-sweep (down, dropped connection) as a SweepError whose
    one-line message never shows the password."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        raise SweepError(f"the study's storage failed ({_masked(e, storage)}); rerun the same "
                         "command to resume") from None


def _masked(e: BaseException, storage: str | None) -> str:
    """The error on one line, without SQLAlchemy's link and without the URL's password."""
    text = " ".join(str(e).split()).split(" (Background on this error")[0][:400]
    password = re.match(r"[^:]+://[^/?#@:]*:([^/?#@]*)@", storage or "")
    if password and password.group(1):
        text = text.replace(password.group(1), "***")
    return text


def open_study(sweep_dir: Path, spec: SweepSpec, storage: str | None,
               heartbeat: tuple[int, int] = HEARTBEAT) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is ours to report
    with _readable_journal(sweep_dir, storage):
        return optuna.create_study(study_name=study_name(spec),
                                   storage=open_storage(sweep_dir, storage, heartbeat),
                                   sampler=_GridSampler(spec.search_space(), seed=spec.base.seed),
                                   direction="minimize", load_if_exists=True)


@contextlib.contextmanager
def _readable_journal(sweep_dir: Path, storage: str | None) -> Iterator[None]:
    """A journal Optuna cannot parse as one line naming the file."""
    try:
        yield
    except ValueError as e:  # json's and Optuna's "Invalid log format"
        if storage is not None:
            raise
        raise ValueError(f"{Path(sweep_dir) / JOURNAL}: not a readable Optuna journal "
                         f"({' '.join(str(e).split())}); move it away to start this sweep "
                         "over") from None


class _GridSampler(optuna.samplers.GridSampler):
    """GridSampler that also gives enqueued (re-run) trials their grid id, so that Optuna
    counts them as the grid point they are."""

    def before_trial(self, study: optuna.Study, trial) -> None:
        fixed = trial.system_attrs.get("fixed_params")
        if fixed is not None and "grid_id" not in trial.system_attrs:
            point = [fixed[name] for name in self._param_names]
            grid_id = next((i for i, g in enumerate(self._all_grids) if list(g) == point), None)
            if grid_id is not None:
                study._storage.set_trial_system_attr(trial._trial_id, "search_space",
                                                     self._search_space)
                study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)
            return
        super().before_trial(study, trial)


def check_same_sweep(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> None:
    """Refuse a study made with other settings (its finished trials would be reported as
    results of these), before anything is written."""
    if storage is None and not (Path(sweep_dir) / JOURNAL).exists():
        return  # a new sweep (opening the journal would create it)
    where = sweep_dir if storage is None else "the study in --storage"
    store = optuna.storages.get_storage(open_storage(sweep_dir, storage))
    with _readable_journal(sweep_dir, storage):
        names = [s.study_name for s in store.get_all_studies()]
    if storage is None and names and study_name(spec) not in names:
        raise ValueError(f"{where}: holds another sweep ({', '.join(names)}); use another "
                         "--out, or the same settings to resume it")
    if study_name(spec) not in names:
        return
    study_id = store.get_study_id_from_name(study_name(spec))
    stored = store.get_study_user_attrs(study_id).get(SETTINGS)
    if stored is None and store.get_all_trials(study_id, deepcopy=False):
        raise ValueError(f"{where}: holds a sweep without recorded settings; use another "
                         "--out or --storage")
    diff = settings_differences(stored or settings_json(spec), settings_json(spec))
    if diff:
        raise ValueError(f"{where}: holds a sweep with other settings ({'; '.join(diff)}); "
                         "use another --out, or the same settings to resume it")


def record_settings(study: optuna.Study, spec: SweepSpec) -> None:
    if SETTINGS not in study.user_attrs:
        study.set_user_attr(SETTINGS, settings_json(spec))


def repair_journal(sweep_dir: Path) -> None:
    """Undo what a process killed inside Optuna's journal append can leave: its lock (which
    would stall every writer for 30 s) and a last line without its end. Call only while
    holding sweep.lock with no worker running: nobody else can be writing."""
    path = Path(sweep_dir) / JOURNAL
    lock = Path(f"{path}.lock")
    if lock.is_symlink() or lock.exists():
        lock.unlink()
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                os.fsync(f.fileno())


def trials_by_key(study: optuna.Study) -> dict[str, list[FrozenTrial]]:
    """Every trial of the study that counts, grouped by the config it runs (enqueued ones
    included; trials whose result was found broken left out)."""
    invalid = set(study.user_attrs.get(INVALID, []))
    out: dict[str, list] = {}
    for t in study.get_trials(deepcopy=False):
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if params and t.number not in invalid:
            out.setdefault(config_key(params), []).append(t)
    return out


def done(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The finished trial that holds each config's result."""
    return {key: next(t for t in ts if t.state == TrialState.COMPLETE)
            for key, ts in trials_by_key(study).items()
            if any(t.state == TrialState.COMPLETE for t in ts)}


def invalidate(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    if trials:
        numbers = set(study.user_attrs.get(INVALID, [])) | {t.number for t in trials}
        study.set_user_attr(INVALID, sorted(numbers))


def recover(study: optuna.Study, spec: SweepSpec, file_backed: bool,
            problem: Callable[[dict[str, Any], FrozenTrial], str | None]) -> list[str]:
    """Fail the trials of dead workers, set aside results that `problem(values, trial)`
    finds broken, and enqueue every config that has no result and is not waiting or running.
    Returns the problems found."""
    if file_backed:  # we hold the lock: nobody else is running this study
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "failure", "worker died")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    finished = done(study)
    found = {key: problem(values, finished[key]) for values in spec.configs()
             if (key := config_key(values)) in finished}
    invalidate(study, [finished[k] for k, p in found.items() if p])
    attempted = {config_key(t.params or t.system_attrs.get("fixed_params") or {})
                 for t in study.get_trials(deepcopy=False)}
    by_key = trials_by_key(study)
    for values in spec.configs():
        states = {t.state for t in by_key.get(config_key(values), [])}
        if config_key(values) in attempted and not states & {
                TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING}:
            study.enqueue_trial(values, skip_if_exists=False)
    return [p for p in found.values() if p]


def work_left(study: optuna.Study, spec: SweepSpec) -> bool:
    by_key = trials_by_key(study)
    busy = {TrialState.COMPLETE, TrialState.RUNNING}
    if any(t.state == TrialState.WAITING for ts in by_key.values() for t in ts):
        return True
    return any(not ({t.state for t in by_key.get(config_key(v), [])} & busy)
               for v in spec.configs())


def claim(study: optuna.Study, trial: optuna.Trial, key: str, wait: float = 30.0) -> bool:
    """Whether `trial` may run config `key`, decided so that no two trials ever run it.

    Two workers can be handed the same config at once (GridSampler picks its point before
    either trial is visible to the other). Each trial marks "claim", then yields to a
    finished trial, to a lower-numbered running one, or to one already "started"; it waits
    for higher-numbered claimants to decide (they yield to it), then marks "started". A
    trial that decides to run has seen every claimant before it, or was seen by it.
    """
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("claim", os.getpid())
    deadline = time.monotonic() + wait
    while True:
        others = [t for t in trials_by_key(study).get(key, []) if t.number != trial.number]
        running = [t for t in others if t.state == TrialState.RUNNING]
        if any(t.state == TrialState.COMPLETE for t in others) or any(
                t.number < trial.number or "started" in t.user_attrs for t in running):
            return False
        if not any("claim" in t.user_attrs for t in running):
            break
        if time.monotonic() > deadline:  # a claimant that died undecided: run it later
            return False
        time.sleep(0.05)
    trial.set_user_attr("started", os.getpid())
    return True
