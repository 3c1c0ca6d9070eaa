"""The Optuna side of a sweep: its storage, its study, and which trial holds each config's
result, on Optuna's public API only.

Every config is enqueued as a trial (`Study.enqueue_trial`, its values also in the user
attribute `config`); `Study.ask` hands each waiting trial to one process, on a journal file
as on a database. A config is enqueued again when it has no trial waiting, running, or
complete with a result that holds: after a worker dies (on a database Optuna's heartbeat
fails its trial and `on_stale` enqueues it; on the journal the coordinator, holding
sweep.lock, fails every RUNNING trial), or when its result is found broken on disk (the trial
is listed in the study's user attribute `handgrad_invalid`: a finished trial cannot change).
Two coordinators resuming one database study may enqueue a config twice: only the earliest
live trial of a config trains it (`first_of_its_config`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from handgrad.engine.errors import SettingError
from handgrad.run.sweep.spec import (
    SweepError,
    SweepSpec,
    config_key,
    fingerprint,
    mask_url,
    refuse_other_settings,
    settings,
)

JOURNAL = "study.journal"
DATABASES = ("sqlite:", "postgres", "mysql")  # URL schemes of the databases Optuna can use
HEARTBEAT = (60, 180)  # seconds: Optuna's heartbeat interval and grace period on a database
LOCK_GRACE = 10  # seconds after which Optuna frees a journal lock left by a killed process
CONFIG = "config"  # a trial's user attribute: its config's values
SETTINGS, INVALID = "handgrad_settings", "handgrad_invalid"  # the study's user attributes
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


def study_name(spec: SweepSpec) -> str:
    return f"handgrad-sweep-{fingerprint(spec)}"


def open_storage(sweep_dir: Path, storage: str | None, heartbeat: tuple[int, int] = HEARTBEAT):
    """DIR/study.journal, or the database at URL `storage` with Optuna's heartbeat."""
    if storage is None:
        path = str(Path(sweep_dir) / JOURNAL)
        return JournalStorage(JournalFileBackend(path, JournalFileSymlinkLock(path, LOCK_GRACE)))
    url = database_url(storage)
    # SQLite: writers wait for each other up to 60 s, not 5 s, before "database is locked"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():  # heartbeats are marked experimental; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat[0],
                          grace_period=heartbeat[1], heartbeat_stale_trial_callback=on_stale)


def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna has failed `trial` (its worker stopped beating): run its config again."""
    if CONFIG in trial.user_attrs:
        enqueue(study, trial.user_attrs[CONFIG])


def enqueue(study: optuna.Study, values: dict[str, Any]) -> None:
    study.enqueue_trial(values, user_attrs={CONFIG: values})


def database_url(url: str) -> str:
    """The URL SQLAlchemy gets (postgresql+DRIVER:// for PostgreSQL)."""
    if not url.startswith(DATABASES):
        raise SettingError(f"cannot use storage {mask_url(url)!r}: give a database URL "
                           "(postgresql://, mysql://, sqlite:///)", "storage")
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for driver in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    raise SettingError(f"cannot use storage {mask_url(url)!r}: no PostgreSQL driver is "
                       "installed; pip install 'handgrad[postgres]'", "storage")


def check_storage(spec: SweepSpec, storage: str, heartbeat: tuple[int, int]) -> None:
    """Before any work: connect once (a bad URL is one line, without its password), and
    refuse a study of this name made with other settings, or with none recorded."""
    try:
        found = optuna.get_all_study_summaries(open_storage(Path("."), storage, heartbeat), False)
    except SettingError:
        raise
    except Exception as e:  # sqlalchemy and the drivers raise many types
        raise SettingError(f"cannot use storage {mask_url(storage)!r}: "
                           f"{one_line(e, storage)}", "storage") from None
    ours = next((s for s in found if s.study_name == study_name(spec)), None)
    stored = None if ours is None else ours.user_attrs.get(SETTINGS)
    if ours is not None and stored is None and ours.n_trials:
        raise SettingError("the study in storage: holds a sweep without recorded settings; "
                           "choose another out or storage", "out", "storage")
    refuse_other_settings("the study in storage", stored or settings(spec), spec)


@contextlib.contextmanager
def storage_errors(storage: str | None) -> Iterator[None]:
    """A database that fails mid-sweep as a SweepError that never shows the password."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        raise SweepError(f"the study's storage failed ({one_line(e, storage)}); rerun the "
                         "same command to resume") from None


def one_line(e: BaseException, storage: str | None) -> str:
    text = " ".join(str(e).split()).split(" (Background on this error")[0][:400]
    return mask_url(text, storage)


def open_study(sweep_dir: Path, spec: SweepSpec, storage: str | None,
               heartbeat: tuple[int, int] = HEARTBEAT) -> optuna.Study:
    """The sweep's study (created if new). No trial is ever sampled: all are enqueued."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is ours to report
    try:
        return optuna.create_study(study_name=study_name(spec),
                                   storage=open_storage(sweep_dir, storage, heartbeat),
                                   sampler=optuna.samplers.RandomSampler(seed=spec.base.seed),
                                   direction="minimize", load_if_exists=True)
    except ValueError as e:  # json's and Optuna's "Invalid log format"
        if storage is not None:
            raise
        raise ValueError(f"{Path(sweep_dir) / JOURNAL}: not a readable Optuna journal "
                         f"({' '.join(str(e).split())}); move it away to start this sweep "
                         "over") from None


def rewrite_cut_journal(sweep_dir: Path) -> None:
    """A journal whose last entry was cut off (its writer killed mid-write) reads without
    that entry, but the next entry appended would not: copy its studies into a fresh
    journal with `optuna.copy_study`. Only with sweep.lock held and no worker."""
    path = Path(sweep_dir) / JOURNAL
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
    fresh = path.with_name(f"{JOURNAL}.new")
    fresh.unlink(missing_ok=True)
    old, new = open_storage(sweep_dir, None), JournalStorage(JournalFileBackend(str(fresh)))
    for name in optuna.get_all_study_names(old):
        optuna.copy_study(from_study_name=name, from_storage=old, to_storage=new)
    os.replace(fresh, path)


def trials_by_key(study: optuna.Study, states=None) -> dict[str, list[FrozenTrial]]:
    """The trials of each config in number order, but those with a broken result."""
    invalid = set(study.user_attrs.get(INVALID, []))
    out: dict[str, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=states):
        values = t.user_attrs.get(CONFIG) or t.params  # params alone: an older sweep
        if values and t.number not in invalid:
            out.setdefault(config_key(values), []).append(t)
    return out


def done(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The finished trial that holds each config's result."""
    return {key: ts[0] for key, ts in trials_by_key(study, (TrialState.COMPLETE,)).items()}


def first_of_its_config(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Whether no earlier trial of `trial`'s config is waiting, running or holds a result."""
    earlier = trials_by_key(study, LIVE).get(config_key(trial.user_attrs[CONFIG]), [])
    return all(t.number >= trial.number for t in earlier)


def set_invalid(study: optuna.Study, numbers: list[int]) -> None:
    """Set aside the results of trials `numbers` (found broken on disk)."""
    if numbers:
        study.set_user_attr(INVALID, sorted({*study.user_attrs.get(INVALID, []), *numbers}))


def resume(study: optuna.Study, spec: SweepSpec, journal: bool,
           check: Callable[[dict[str, Any], dict[str, Any]], Any]) -> None:
    """Fail the trials of dead workers, set aside the results that `check(values,
    user_attrs)` finds broken (ValueError), and enqueue every config without a live trial.
    With sweep.lock held, before any worker starts."""
    if SETTINGS not in study.user_attrs:
        study.set_user_attr(SETTINGS, settings(spec))
    if journal:  # no heartbeat, but nobody else uses this journal: RUNNING means dead
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # and `on_stale` enqueues their configs
    values, broken = {config_key(v): v for v in spec.configs()}, []
    for key, trial in done(study).items():
        try:
            if key in values:
                check(values[key], trial.user_attrs)
        except ValueError:
            broken.append(trial.number)
    set_invalid(study, broken)
    live = trials_by_key(study, LIVE)
    for key, config in values.items():
        if key not in live:
            enqueue(study, config)


def has_waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
