"""The coordinator of a sweep: validates everything before it writes anything, holds
sweep.lock, resumes the study, runs the workers, reports finished configs to a `Progress`,
and collects the results."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from handgrad.data import Dataset
from handgrad.run.config import load_data
from handgrad.run.files import command_line
from handgrad.run.progress import ConfigDone, Progress
from handgrad.run.sweep import folder, study, worker
from handgrad.run.sweep.results import collect
from handgrad.run.sweep.spec import SweepSpec, config_key
from handgrad.run.train import preflight

POLL_SECONDS = 0.5  # how often the coordinator looks for configs its workers finished


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
                 heartbeat: tuple[int, int] = study.HEARTBEAT,
                 progress: Progress | None = None) -> None:
        worker.check_options(workers, threads, storage, select_by)
        spec.validate()
        # every config.json records the command: never with a database password in it
        spec = dataclasses.replace(spec, command=[folder.mask_url(a) for a in
                                                  (spec.command or command_line())])
        self.sweep_dir, self.spec, self.workers = Path(sweep_dir), spec, workers
        self.storage, self.select_by, self.threads = storage, select_by, threads
        self.heartbeat, self.progress = heartbeat, progress
        folder.check_record(self.sweep_dir, spec, storage)
        with worker.torch_threads(threads):  # the data's statistics as the workers see them
            self.dataset = dataset if dataset is not None else load_data(spec.base)
        for values in spec.configs():  # train's own memory check, for every config
            try:
                preflight(spec.config_for(values), self.dataset, None)
            except ValueError as e:
                raise ValueError(f"config {config_key(values)}: {e}") from e
        if storage is not None:
            study.check_storage(storage, heartbeat)
        study.check_same_sweep(self.sweep_dir, spec, storage)
        self.lock, self.procs, self.errors = folder.lock(self.sweep_dir), [], None
        self.study: optuna.Study | None = None
        self.sweep_id, self.stop_watching = "", lambda: None
        self.summary: dict[str, Any] | None = None

    def __enter__(self) -> Sweep:
        folder.acquire_lock(self.lock)
        try:
            with study.storage_errors(self.storage):
                self.resume()
                kwargs = dict(sweep_dir=self.sweep_dir, spec=self.spec, storage=self.storage,
                              threads=self.threads, dataset=self.dataset,
                              sweep_id=self.sweep_id, heartbeat=self.heartbeat)
                if self.workers > 1:  # forked before the watching thread starts
                    self.procs, self.errors = worker.start_workers(self.workers, kwargs)
                self.stop_watching = watch(self.study, self.spec, self.progress)
                if self.workers == 1:
                    with worker.torch_threads(self.threads):
                        worker.run_worker(**kwargs)
        except BaseException:
            self.stop()
            raise
        return self

    def resume(self) -> None:
        """Under the lock: the folder's record, the study, and the configs to (re)run."""
        record = folder.check_record(self.sweep_dir, self.spec, self.storage) or \
            folder.write_record(self.sweep_dir, self.spec, self.storage)
        self.sweep_id = record["id"]
        if self.storage is None:
            study.rewrite_cut_journal(self.sweep_dir)
        self.study = study.open_study(self.sweep_dir, self.spec, self.storage, self.heartbeat)

        def problem(values: dict[str, Any], trial: optuna.trial.FrozenTrial) -> str | None:
            run_dir = folder.locate(self.sweep_dir, self.sweep_id, trial.user_attrs)
            if run_dir is None:
                return None  # on another machine: the study's record is the result
            return folder.run_dir_problem(run_dir, self.spec, values, trial.user_attrs)

        study.resume(self.study, self.spec, self.storage is None, problem)

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.stop()
            return
        try:
            worker.join_workers(self.procs, self.errors)
            self.stop_watching()
            with worker.torch_threads(self.threads), study.storage_errors(self.storage):
                self.summary = collect(self.sweep_dir, self.sweep_id, self.spec, self.study,
                                       self.select_by, self.dataset)
        except BaseException:  # Ctrl-C while waiting included: the workers ignore it
            self.stop()
            raise
        self.lock.release()

    def stop(self) -> None:
        """Stop watching and the workers (a trial they leave RUNNING is failed by the
        heartbeat on a database, by the next run on a journal); release the lock."""
        self.stop_watching()
        worker.stop_workers(self.procs)
        self.procs = []
        self.lock.release()


def watch(running: optuna.Study | None, spec: SweepSpec,
          progress: Progress | None) -> Callable[[], None]:
    """Tell `progress` of the configs done, then of each that finishes, polling the study in
    a thread; returns the function that stops it after one last poll."""
    if progress is None or running is None:
        return lambda: None
    values = {config_key(v): v for v in spec.configs()}  # in the sweep's order
    seen = {k for k in study.done(running) if k in values}
    progress.sweep_start(len(values), len(seen))
    stop = threading.Event()

    def poll() -> None:
        for key, trial in study.done(running).items():
            if key in values and key not in seen:
                seen.add(key)
                progress.config_done(_event(trial, values[key], len(seen), len(values)))

    def loop() -> None:
        while not stop.wait(POLL_SECONDS):
            poll()
        poll()  # once more after the workers ended: nothing finished goes unreported

    thread = threading.Thread(target=loop, name="handgrad-sweep-watch", daemon=True)
    thread.start()

    def stop_watching() -> None:
        stop.set()
        thread.join()

    return stop_watching


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
              heartbeat: tuple[int, int] = study.HEARTBEAT,
              progress: Progress | None = None) -> dict[str, Any]:
    """Run (or finish) the sweep in `sweep_dir`, write results.{json,csv}, return their
    content. `dataset`: the base config's data if loaded already (used in this process);
    `progress`: told of every config that finishes."""
    with Sweep(sweep_dir, spec, workers, storage, select_by, dataset, threads,
               heartbeat, progress) as sweep:
        pass
    return sweep.summary
