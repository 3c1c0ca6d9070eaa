"""The coordinator of a sweep: validates everything before it writes anything, holds
sweep.lock, resumes the study, runs its workers, reports finished configs to a `Progress`,
and collects the results."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from handgrad.data import Dataset
from handgrad.run.config import load_data
from handgrad.run.files import command_line
from handgrad.run.progress import ConfigDone, Progress
from handgrad.run.sweep import folder
from handgrad.run.sweep.folder import check_record, locate, mask_url, run_dir_problem
from handgrad.run.sweep.results import collect
from handgrad.run.sweep.spec import SweepSpec, config_key
from handgrad.run.sweep.study import (
    HEARTBEAT,
    check_same_sweep,
    check_storage,
    done,
    open_study,
    resume,
    rewrite_cut_journal,
    storage_errors,
)
from handgrad.run.sweep.worker import (
    check_options,
    join_workers,
    run_worker,
    start_workers,
    stop_workers,
    torch_threads,
)
from handgrad.run.train import preflight

POLL_SECONDS = 0.5  # how often the coordinator looks for configs finished by its workers


class Sweep:
    """A sweep as a context. Creating it validates everything and writes nothing. Entering
    runs it (one worker, in this process) or starts it (several worker processes, with
    `threads` torch threads each, while the caller does other work). Leaving waits for the
    workers and writes results.{json,csv}, then in `summary`; an exception inside (Ctrl-C
    included) stops the workers, and rerunning resumes.

        with Sweep(dir, spec, workers=2) as sweep:
            ...                       # runs while the workers train
        sweep.summary                 # results.json's content

    progress: told of every config that finishes (polled from the study in a thread).
    """

    def __init__(self, sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
                 storage: str | None = None, select_by: str = "val_loss",
                 dataset: Dataset | None = None, threads: int = 1,
                 heartbeat: tuple[int, int] = HEARTBEAT,
                 progress: Progress | None = None) -> None:
        check_options(workers, threads, storage, select_by)
        spec.validate()
        # every config.json records the command: never with a database password in it
        spec = dataclasses.replace(spec, command=[mask_url(a) for a in
                                                  (spec.command or command_line())])
        self.sweep_dir, self.spec, self.workers = Path(sweep_dir), spec, workers
        self.storage, self.select_by, self.threads = storage, select_by, threads
        self.heartbeat, self.progress = heartbeat, progress
        check_record(self.sweep_dir, spec, storage)
        with torch_threads(threads):  # the data's statistics as the workers compute them
            self.dataset = dataset if dataset is not None else load_data(spec.base)
        for values in spec.configs():  # train's own memory check, for every config
            try:
                preflight(spec.config_for(values), self.dataset, None)
            except ValueError as e:
                raise ValueError(f"config {config_key(values)}: {e}") from e
        if storage is not None:
            check_storage(storage, heartbeat)
        check_same_sweep(self.sweep_dir, spec, storage)
        self.summary: dict[str, Any] | None = None
        self._lock, self._procs, self._errors = folder.lock(self.sweep_dir), [], None
        self._study: optuna.Study | None = None
        self._id = ""
        self._watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Sweep:
        folder.acquire_lock(self._lock)
        try:
            with storage_errors(self.storage):
                self._resume()
                args = (self.sweep_dir, self.spec, self.storage, self.threads, self.dataset,
                        self._id, self.heartbeat)
                if self.workers == 1:
                    self._start_watching()
                    with torch_threads(self.threads):
                        run_worker(*args)
                else:  # the watcher's thread starts after the fork
                    self._procs, self._errors = start_workers(self.workers, args, self.threads,
                                                              self.spec.base)
                    self._start_watching()
        except BaseException:
            self._stop()
            self._lock.release()
            raise
        return self

    def _resume(self) -> None:
        """Under the lock: the folder's record, the study, and the configs to (re)run."""
        record = check_record(self.sweep_dir, self.spec, self.storage) or \
            folder.write_record(self.sweep_dir, self.spec, self.storage)
        self._id = record["id"]
        if self.storage is None:
            rewrite_cut_journal(self.sweep_dir)
        self._study = open_study(self.sweep_dir, self.spec, self.storage, self.heartbeat)

        def problem(values: dict[str, Any], trial) -> str | None:
            run_dir = locate(self.sweep_dir, self._id, trial.user_attrs)
            if run_dir is None:
                return None  # on another machine: the study's record is the result
            return run_dir_problem(run_dir, self.spec, values, trial.user_attrs)

        resume(self._study, self.spec, self.storage is None, problem)

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:
                self._stop()
                return
            try:
                join_workers(self._procs, self._errors)
            except BaseException:  # Ctrl-C while waiting: the workers ignore it
                self._stop()
                raise
            self._stop_watching()
            with torch_threads(self.threads), storage_errors(self.storage):
                self.summary = collect(self.sweep_dir, self._id, self.spec, self._study,
                                       self.select_by, self.dataset)
        finally:
            self._lock.release()

    def _stop(self) -> None:
        """Stop watching and stop the workers; fail at once the trials of any that had to be
        killed (on a database their heartbeat would fail them only after the grace period)."""
        self._stop_watching()
        stop_workers(self._procs)
        pids = {p.pid for p in self._procs}
        if pids and self._study is not None:
            with contextlib.suppress(Exception):  # the storage may be what failed
                for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    if t.user_attrs.get("started") in pids and \
                            t.user_attrs.get("host") == socket.gethostname():
                        self._study.tell(t.number, state=TrialState.FAIL)
        self._procs = []

    def _start_watching(self) -> None:
        if self.progress is None:
            return
        values = {config_key(v): v for v in self.spec.configs()}  # in the sweep's order
        seen = {k for k in done(self._study) if k in values}
        self.progress.sweep_start(len(values), len(seen))

        def poll() -> None:
            for key, trial in done(self._study).items():
                if key in values and key not in seen:
                    seen.add(key)
                    self.progress.config_done(_event(trial, values[key], len(seen),
                                                     len(values)))

        def watch() -> None:
            while not self._watch.wait(POLL_SECONDS):
                poll()
            poll()  # once more after the workers ended: nothing finished goes unreported

        self._watcher = threading.Thread(target=watch, name="handgrad-sweep-watch", daemon=True)
        self._watcher.start()

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watch.set()
            self._watcher.join()
            self._watcher = None


def _event(trial: optuna.trial.FrozenTrial, values: dict[str, Any], n_done: int,
           total: int) -> ConfigDone:
    """A finished trial as the progress hook hears of it (its metrics from its attributes)."""
    attrs, seconds = trial.user_attrs, None
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return ConfigDone(n_done, total, dict(values), attrs.get("status", "?"),
                      attrs.get("val_loss"), attrs.get("val_accuracy"), seconds)


def run_sweep(sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
              storage: str | None = None, select_by: str = "val_loss",
              dataset: Dataset | None = None, threads: int = 1,
              heartbeat: tuple[int, int] = HEARTBEAT,
              progress: Progress | None = None) -> dict[str, Any]:
    """Run (or finish) the sweep in `sweep_dir`, write results.{json,csv}, return their
    content. `dataset`: the base config's data if loaded already (used in this process);
    `progress`: told of every config that finishes."""
    with Sweep(sweep_dir, spec, workers, storage, select_by, dataset, threads,
               heartbeat, progress) as sweep:
        pass
    return sweep.summary
