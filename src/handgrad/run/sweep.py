"""Grid sweeps on Optuna: resumable, safe for several worker processes, one run dir a config.

The study lives in a journal file in the sweep directory (Optuna's `JournalStorage` with a
file backend, safe for processes on one machine), or in any database given by `storage`
(then workers on several machines share it). Optuna's facts this module copes with:

- GridSampler counts a failed trial as visited and never retries it, and journal storage has
  no heartbeat, so a worker that dies leaves its trial RUNNING forever. The coordinator holds
  `sweep.lock` while it runs; a coordinator that acquires it knows every RUNNING trial of a
  file-backed study is dead, marks it FAIL and enqueues its config again (with a database
  URL, Optuna's heartbeat fails stale trials instead, and they are enqueued the same way).
- An exhausted grid re-evaluates a random point if asked again, so workers never call
  `optimize` open-ended: each asks for one trial at a time while some config still lacks a
  result, and a trial whose config is already done or taken is pruned before any training.
- A diverged config (NaN/inf) is a COMPLETE trial with value +inf and status "diverged":
  it is never selected and never stops the sweep.

Selection uses validation loss (or accuracy), never training loss; the selected model is then
evaluated once on the test set.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import math
import multiprocessing as mp
import os
import signal
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from handgrad.data import Dataset
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.progress import Progress
from handgrad.run.sweep_results import collect
from handgrad.run.sweep_spec import (
    SELECT_BY,
    SweepError,
    SweepSpec,
    config_key,
    run_dir_name,
    settings,
    settings_differences,
    trials_by_key,
)
from handgrad.run.sweep_watch import SweepWatcher
from handgrad.run.train import train

STUDY = "handgrad-sweep"
JOURNAL = "study.journal"
SETTINGS = "handgrad_settings"  # study user attribute: the sweep_spec.settings it was made with


def open_storage(sweep_dir: Path, storage: str | None):
    if storage is None:
        return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    if storage.startswith(("sqlite", "postgresql", "mysql")):
        with warnings.catch_warnings():  # heartbeats are marked experimental; we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(storage, heartbeat_interval=60, grace_period=180)
    return storage


def check_storage(storage: str) -> None:
    """Open the database once, so that a bad URL is a one-line error before any work."""
    try:
        optuna.storages.get_storage(open_storage(Path("."), storage))
    except Exception as e:  # sqlalchemy and the drivers raise many types
        raise ValueError(f"cannot use --storage {storage!r}: {' '.join(str(e).split())}"
                         ) from None


def _study(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=STUDY, storage=open_storage(sweep_dir, storage),
                               sampler=_GridSampler(spec.search_space(), seed=spec.base.seed),
                               direction="minimize", load_if_exists=True)


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


class SweepLock:
    """An exclusive lock on DIR/sweep.lock for the coordinator's lifetime."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / "sweep.lock"
        self.file = None

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise ValueError(f"{self.path.parent}: another sweep is running on this directory"
                             ) from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _check_same_sweep(sweep_dir: Path, spec: SweepSpec, storage: str | None) -> None:
    """Refuse to resume a study made with other settings (its finished trials would be
    reported as results of these), before anything is written. A new study gets the
    settings recorded by `_record_settings`."""
    if storage is None and not (sweep_dir / JOURNAL).exists():
        return  # a new sweep (opening the journal would create it)
    where = sweep_dir if storage is None else "the study in --storage"
    store = optuna.storages.get_storage(open_storage(sweep_dir, storage))
    try:
        study_id = store.get_study_id_from_name(STUDY)
    except KeyError:
        return
    stored = store.get_study_user_attrs(study_id).get(SETTINGS)
    if stored is None:
        if store.get_all_trials(study_id, deepcopy=False):
            raise ValueError(f"{where}: holds a sweep without recorded settings; "
                             "use another directory")
        return
    diff = settings_differences(stored, _settings_json(spec))
    if diff:
        raise ValueError(f"{where}: holds a sweep with other settings ({'; '.join(diff)}); "
                         "use another --out, or the same settings to resume it")


def _settings_json(spec: SweepSpec) -> dict[str, Any]:
    return json.loads(json.dumps(settings(spec)))


def _record_settings(study: optuna.Study, spec: SweepSpec) -> None:
    if SETTINGS not in study.user_attrs:
        study.set_user_attr(SETTINGS, _settings_json(spec))


def recover(study: optuna.Study, spec: SweepSpec, file_backed: bool) -> int:
    """Fail the trials of dead workers and enqueue every config that has no result and is
    not waiting or running. Returns the number of configs enqueued."""
    if file_backed:  # we hold the lock: nobody else is running this study
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "failure", "worker died")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    by_key = trials_by_key(study)
    enqueued = 0
    for values in spec.configs():
        trials = by_key.get(config_key(values), [])
        states = {t.state for t in trials}
        if states & {TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING}:
            continue
        if TrialState.FAIL in states or TrialState.PRUNED in states:
            study.enqueue_trial(values, skip_if_exists=False)
            enqueued += 1
    return enqueued


def _work_left(study: optuna.Study, spec: SweepSpec) -> bool:
    by_key = trials_by_key(study)
    busy = {TrialState.COMPLETE, TrialState.RUNNING}
    if any(t.state == TrialState.WAITING for ts in by_key.values() for t in ts):
        return True
    return any(not ({t.state for t in by_key.get(config_key(v), [])} & busy)
               for v in spec.configs())


def _taken_by_another(study: optuna.Study, trial: optuna.Trial, key: str) -> bool:
    for t in trials_by_key(study).get(key, []):
        if t.number == trial.number:
            continue
        if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING
                                              and t.number < trial.number):
            return True
    return False


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when its coordinator dies (even by SIGKILL),
    so that no orphan keeps training a config the next run will redo."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawned_worker(sweep_dir: str, spec: SweepSpec, storage: str | None, threads: int,
                    dataset: Dataset | None) -> None:
    _die_with_parent()
    run_worker(sweep_dir, spec, storage, threads, dataset)


def run_worker(sweep_dir: str, spec: SweepSpec, storage: str | None, threads: int,
               dataset: Dataset | None = None) -> None:
    """Ask for one trial at a time until every config has a result or is being run.
    `dataset`: the base config's data, when the caller has it loaded already."""
    torch.set_num_threads(threads)
    sweep_dir = Path(sweep_dir)
    study = _study(sweep_dir, spec, storage)
    space = spec.search_space()
    base = spec.base
    if dataset is None:
        dataset = load_data(base)

    def objective(trial: optuna.Trial) -> float:
        values = {k: trial.suggest_categorical(k, choices) for k, choices in space.items()}
        key = config_key(values)
        if key not in {config_key(v) for v in spec.configs()} or \
                _taken_by_another(study, trial, key):
            raise optuna.TrialPruned(f"{key} is done or taken")
        trial.set_user_attr("started", os.getpid())
        run_dir = sweep_dir / "configs" / run_dir_name(values)
        result = train(spec.config_for(values), dataset, run_dir, evaluate_test=False,
                       command=spec.command)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("run_dir", str(run_dir.relative_to(sweep_dir)))
        val_loss = result.summary()["val_loss"]
        if result.status != "completed" or val_loss is None or not math.isfinite(val_loss):
            return math.inf
        return val_loss

    while _work_left(study, spec):
        study.optimize(objective, n_trials=1)


class Sweep:
    """A sweep as a context. Entering runs it, or starts it: one worker runs in this process
    before `__enter__` returns; several run as processes in the background while the caller
    does other work (with `threads` torch threads). Leaving waits for them and writes the
    results, then in `summary`; an exception inside stops the workers (rerunning resumes).

        with Sweep(dir, spec, workers=2) as sweep:
            ...                       # runs while the workers train
        sweep.summary                 # results.json's content

    progress: told of every config that finishes (`SweepWatcher`, a thread of this process).
    """

    def __init__(self, sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
                 storage: str | None = None, select_by: str = "val_loss",
                 dataset: Dataset | None = None, progress: Progress | None = None) -> None:
        if select_by not in SELECT_BY:
            raise ValueError(f"unknown --select-by {select_by!r}; choose from: "
                             f"{', '.join(SELECT_BY)}")
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        spec.validate()
        if storage is not None:
            check_storage(storage)
        _check_same_sweep(Path(sweep_dir), spec, storage)
        self.sweep_dir, self.spec, self.workers = Path(sweep_dir), spec, workers
        self.storage, self.select_by, self.dataset = storage, select_by, dataset
        self.progress = progress
        self._watcher: SweepWatcher | None = None
        self.procs: list = []
        self.summary: dict[str, Any] | None = None
        self._lock = SweepLock(self.sweep_dir)
        self._threads = torch.get_num_threads()
        self._study: optuna.Study | None = None

    @property
    def threads(self) -> int:
        """torch threads of each worker: this process's threads shared among the workers.
        Work done beside the workers should use as many: it keeps the cores evenly shared,
        and float32 results depend on the thread count, so they depend only on the command."""
        return max(1, self._threads // self.workers)

    def __enter__(self) -> Sweep:
        self._lock.__enter__()
        try:
            self._study = _study(self.sweep_dir, self.spec, self.storage)
            _record_settings(self._study, self.spec)
            recover(self._study, self.spec, file_backed=self.storage is None)
            self._watcher = SweepWatcher(self.sweep_dir, self.spec, self._study, self.progress)
            if self.workers == 1:
                self._watcher.start()
                run_worker(str(self.sweep_dir), self.spec, self.storage, self.threads,
                           self.dataset)
            else:  # the watcher's thread starts after the fork
                self.procs = _start_worker_processes(self.sweep_dir, self.spec, self.storage,
                                                     self.workers, self.threads, self.dataset)
                self._watcher.start()
        except BaseException:
            self._stop_workers()
            self._lock.__exit__()
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:
                self._stop_workers()
                return
            _join(self.procs)
            self._watcher.stop()
            self.summary = collect(self.sweep_dir, self.spec, self._study, self.select_by,
                                   self.dataset)
        finally:
            self._lock.__exit__()

    def _stop_workers(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join()


def run_sweep(sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
              storage: str | None = None, select_by: str = "val_loss",
              dataset: Dataset | None = None, progress: Progress | None = None,
              ) -> dict[str, Any]:
    """Run (or finish) the sweep in `sweep_dir`; write results.{json,csv,md}; return them.
    `dataset`: the base config's data if already loaded (used in this process only);
    `progress`: told of every config that finishes."""
    with Sweep(sweep_dir, spec, workers, storage, select_by, dataset, progress) as sweep:
        pass
    return sweep.summary


def _start_worker_processes(sweep_dir: Path, spec: SweepSpec, storage: str | None,
                            workers: int, threads: int, dataset: Dataset | None) -> list:
    """N worker processes. Forked after the data is loaded where `start_method` allows it,
    so that they share it (copy-on-write) and skip re-importing torch; spawned otherwise,
    each loading the data itself."""
    if start_method(threads, spec.base) == "fork":
        ctx = mp.get_context("fork")
        if spec.base.engine == "autograd":
            # torch.optim's optimizers import torch._dynamo (about a second) when built
            # (handgrad's do not): importing it once here lets the workers share it.
            importlib.import_module("torch._dynamo")
        if dataset is None:
            dataset = load_data(spec.base)
    else:
        ctx, dataset = mp.get_context("spawn"), None
    worker_args = (str(sweep_dir), spec, storage, threads, dataset)
    procs = [ctx.Process(target=_spawned_worker, args=worker_args) for _ in range(workers)]
    for p in procs:
        p.start()
    return procs


def start_method(threads: int, config: TrainConfig) -> str:
    """How to start sweep workers: "fork" when they train single-threaded on the CPU (where
    fork exists), else "spawn". A forked child that runs OpenMP with several threads after
    its parent did can deadlock (GNU libgomp), and one cannot use CUDA at all once its
    parent has (torch refuses to re-initialise it)."""
    on_cpu = config.resolved_device().type == "cpu"
    if threads == 1 and on_cpu and "fork" in mp.get_all_start_methods():
        return "fork"
    return "spawn"


def _join(procs: list) -> None:
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise SweepError(f"{len(failed)} sweep worker(s) failed (exit codes {failed}); rerun "
                         "the same command to finish the sweep")
