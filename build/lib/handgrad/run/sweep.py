"""Grid sweeps on Optuna: resumable, safe for several worker processes, one run dir a config.

A coordinator validates the whole command (settings, data, storage, the --out directory)
before it writes anything, then holds `sweep.lock` while its workers ask the study for one
config at a time (see `sweep_study` for Optuna's side, `sweep_dir` for the directory).

- Every config trains with the same number of torch threads (`threads`, 1 by default),
  whatever the number of workers: float32 results depend on the thread count, so they then
  depend on the settings only, not on `--workers`.
- Workers ignore SIGINT (a terminal sends it to the whole process group): on Ctrl-C the
  coordinator alone gets KeyboardInterrupt, stops its workers, and rerunning resumes.
- A diverged config (NaN/inf) is a COMPLETE trial with value +inf and status "diverged":
  it is never selected and never stops the sweep.

Selection uses validation loss (or accuracy), never training loss; the selected model is then
evaluated once on the test set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import multiprocessing as mp
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from handgrad.data import Dataset
from handgrad.run.config import load_data
from handgrad.run.files import command_line, finite_or_none
from handgrad.run.progress import Progress
from handgrad.run.sweep_dir import (
    SweepLock,
    check_record,
    mask_url,
    run_dir_problem,
    write_record,
)
from handgrad.run.sweep_results import collect, locate
from handgrad.run.sweep_spec import ConfigFailed, SweepSpec, config_key, run_dir_name
from handgrad.run.sweep_study import (
    HEARTBEAT,
    check_same_sweep,
    check_storage,
    claim,
    open_study,
    record_settings,
    recover,
    repair_journal,
    storage_errors,
    work_left,
)
from handgrad.run.sweep_watch import SweepWatcher
from handgrad.run.sweep_workers import (
    check_options,
    die_with_parent,
    join_workers,
    raise_interrupt,
    sigint_ignored,
    start_method,
    torch_threads,
)
from handgrad.run.train import train

METRIC_ATTRS = ("status", "train_loss", "val_loss", "val_accuracy")


def _spawned_worker(errors, sweep_dir: str, spec: SweepSpec, storage: str | None, threads: int,
                    dataset: Dataset | None, sweep_id: str, heartbeat: tuple[int, int]) -> None:
    """A worker process: its failure is one line sent to the coordinator, not a traceback.
    SIGTERM (how the coordinator stops it) fails its trial in the study before it exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    signal.signal(signal.SIGTERM, raise_interrupt)
    die_with_parent()
    # a failure in Optuna's heartbeat thread: one line to the coordinator, not a traceback
    threading.excepthook = lambda e: errors.put(f"heartbeat: {' '.join(str(e.exc_value).split())}")
    try:
        with storage_errors(storage):
            run_worker(sweep_dir, spec, storage, threads, dataset, sweep_id, heartbeat)
    except KeyboardInterrupt:
        errors.put("a worker was stopped by SIGTERM")
        sys.exit(1)
    except Exception as e:  # a ConfigFailed as itself: the coordinator then never says "rerun"
        errors.put(e if isinstance(e, ConfigFailed) else " ".join(str(e).split()) or
                   type(e).__name__)
        sys.exit(1)


def run_worker(sweep_dir: str, spec: SweepSpec, storage: str | None, threads: int,
               dataset: Dataset | None = None, sweep_id: str = "",
               heartbeat: tuple[int, int] = HEARTBEAT) -> None:
    """Ask for one trial at a time until every config has a result or is being run.
    `dataset`: the base config's data, when the caller has it loaded already."""
    torch.set_num_threads(threads)
    sweep_dir = Path(sweep_dir)
    study = open_study(sweep_dir, spec, storage, heartbeat)
    space = spec.search_space()
    keys = {config_key(v) for v in spec.configs()}
    if dataset is None:
        dataset = load_data(spec.base)
    where = {"host": socket.gethostname(), "out": str(sweep_dir.resolve()), "sweep_id": sweep_id}

    def objective(trial: optuna.Trial) -> float:
        values = {k: trial.suggest_categorical(k, choices) for k, choices in space.items()}
        key = config_key(values)
        if key not in keys or not claim(study, trial, key):
            raise optuna.TrialPruned(f"{key} is done or taken")
        run_dir = Path("configs") / run_dir_name(values)
        for name, value in {**where, "run_dir": str(run_dir)}.items():
            trial.set_user_attr(name, value)
        shutil.rmtree(sweep_dir / run_dir, ignore_errors=True)  # a dead attempt's files
        try:
            result = train(spec.config_for(values), dataset, sweep_dir / run_dir,
                           evaluate_test=False, command=spec.command)
        except OSError:  # the disk or a file system: may well pass on a rerun
            raise
        except Exception as e:  # the config's own settings: fails again on a rerun
            raise ConfigFailed.of(key, e) from None
        summary = finite_or_none(result.summary())
        for name in METRIC_ATTRS:
            trial.set_user_attr(name, summary[name])
        val_loss = summary["val_loss"]
        if result.status != "completed" or val_loss is None or not math.isfinite(val_loss):
            return math.inf
        return val_loss

    while work_left(study, spec):
        study.optimize(objective, n_trials=1)


class Sweep:
    """A sweep as a context. Creating it validates everything and writes nothing. Entering
    runs it, or starts it: one worker runs in this process before `__enter__` returns;
    several run as processes in the background while the caller does other work (with
    `threads` torch threads). Leaving waits for them and writes the results, then in
    `summary`; an exception inside (Ctrl-C included) stops the workers (rerunning resumes).

        with Sweep(dir, spec, workers=2) as sweep:
            ...                       # runs while the workers train
        sweep.summary                 # results.json's content

    progress: told of every config that finishes (`SweepWatcher`, a thread of this process).
    """

    def __init__(self, sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
                 storage: str | None = None, select_by: str = "val_loss",
                 dataset: Dataset | None = None, threads: int = 1,
                 heartbeat: tuple[int, int] = HEARTBEAT,
                 progress: Progress | None = None) -> None:
        check_options(workers, threads, storage, select_by)
        spec.validate()
        # every config.json records the command: never with a database password in it
        command = [mask_url(a) for a in (spec.command or command_line())]
        spec = dataclasses.replace(spec, command=command)
        self.sweep_dir, self.spec, self.workers = Path(sweep_dir), spec, workers
        self.storage, self.select_by, self.threads = storage, select_by, threads
        self.heartbeat = heartbeat
        check_record(self.sweep_dir, spec, storage)
        with torch_threads(threads):  # the data's statistics as the workers would compute them
            self.dataset = dataset if dataset is not None else load_data(spec.base)
        spec.check_fits(self.dataset)  # train's memory check, for every config
        if storage is not None:
            check_storage(storage, heartbeat)
        check_same_sweep(self.sweep_dir, spec, storage)
        self.procs: list = []
        self.summary: dict[str, Any] | None = None
        self._lock = SweepLock(self.sweep_dir)
        self._study: optuna.Study | None = None
        self._id = ""
        self._errors = None  # the workers' one-line failures
        self.progress = progress
        self._watcher: SweepWatcher | None = None

    def __enter__(self) -> Sweep:
        self._lock.__enter__()
        try:
            with storage_errors(self.storage):
                self._prepare()
                self._watcher = SweepWatcher(self.sweep_dir, self.spec, self._study,
                                             self.progress)
                if self.workers == 1:
                    self._watcher.start()
                    with torch_threads(self.threads):
                        run_worker(str(self.sweep_dir), self.spec, self.storage, self.threads,
                                   self.dataset, self._id, self.heartbeat)
                else:  # the watcher's thread starts after the fork
                    self.procs = _start_worker_processes(self, self.dataset)
                    self._watcher.start()
        except BaseException:
            self._stop_workers()
            self._lock.__exit__()
            raise
        return self

    def _prepare(self) -> None:
        """Under the lock: the directory's record, the study, and the configs to (re)run."""
        record = check_record(self.sweep_dir, self.spec, self.storage) or \
            write_record(self.sweep_dir, self.spec, self.storage)
        self._id = record["id"]
        if self.storage is None:
            repair_journal(self.sweep_dir)
        self._study = open_study(self.sweep_dir, self.spec, self.storage, self.heartbeat)
        record_settings(self._study, self.spec)

        def problem(values: dict[str, Any], trial) -> str | None:
            run_dir = locate(self.sweep_dir, self._id, trial)
            if run_dir is None:
                return None  # on another machine: the study's record is the result
            return run_dir_problem(run_dir, self.spec, values, trial.user_attrs)

        recover(self._study, self.spec, self.storage is None, problem)

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:
                self._stop_workers()
                return
            try:
                join_workers(self.procs, self._errors)
            except BaseException:  # Ctrl-C while waiting: the workers ignore it
                self._stop_workers()
                raise
            self._watcher.stop()
            with torch_threads(self.threads), storage_errors(self.storage):
                self.summary = collect(self.sweep_dir, self._id, self.spec, self._study,
                                       self.select_by, self.dataset)
        finally:
            self._lock.__exit__()

    def _stop_workers(self) -> None:
        """Terminate the worker processes; with a database, fail their trials at once
        rather than after the heartbeat's grace period."""
        if self._watcher is not None:
            self._watcher.stop()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(10)
            if p.is_alive():  # stuck (say, on a database that does not answer)
                p.kill()
                p.join()
        pids = {p.pid for p in self.procs}
        if self.procs and self.storage is not None and self._study is not None:
            with contextlib.suppress(Exception):  # the database may be what failed
                for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    if t.user_attrs.get("claim") in pids and \
                            t.user_attrs.get("host") == socket.gethostname():
                        self._study._storage.set_trial_state_values(t._trial_id,
                                                                    TrialState.FAIL)
        self.procs = []


def run_sweep(sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
              storage: str | None = None, select_by: str = "val_loss",
              dataset: Dataset | None = None, threads: int = 1,
              heartbeat: tuple[int, int] = HEARTBEAT,
              progress: Progress | None = None) -> dict[str, Any]:
    """Run (or finish) the sweep in `sweep_dir`; write results.{json,csv,md}; return them.
    `dataset`: the base config's data if already loaded (used in this process only);
    `progress`: told of every config that finishes."""
    with Sweep(sweep_dir, spec, workers, storage, select_by, dataset, threads,
               heartbeat, progress) as sweep:
        pass
    return sweep.summary


def _start_worker_processes(sweep: Sweep, dataset: Dataset) -> list:
    """N worker processes, started with SIGINT ignored (forked and spawned children keep
    that). Forked after the data is loaded where `start_method` allows it, so that they share
    it (copy-on-write) and skip re-importing torch; spawned otherwise, each loading the data
    itself."""
    if start_method(sweep.threads, sweep.spec.base) == "fork":
        ctx = mp.get_context("fork")
        if sweep.spec.base.engine == "autograd":
            # torch.optim's optimizers import torch._dynamo (about a second) when built
            # (handgrad's do not): importing it once here lets the workers share it.
            importlib.import_module("torch._dynamo")
    else:
        ctx, dataset = mp.get_context("spawn"), None
    sweep._errors = ctx.SimpleQueue()
    args = (sweep._errors, str(sweep.sweep_dir), sweep.spec, sweep.storage, sweep.threads, dataset,
            sweep._id, sweep.heartbeat)
    procs = [ctx.Process(target=_spawned_worker, args=args) for _ in range(sweep.workers)]
    with sigint_ignored():
        for p in procs:
            p.start()
    return procs
