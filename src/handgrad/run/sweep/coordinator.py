"""Running a sweep: the coordinator validates everything before it writes anything, holds
sweep.lock, resumes the study and collects the results; its workers (itself, or worker
processes) take waiting trials and train their configs.

Every config trains on `threads` torch threads whatever the number of workers: float32
results depend on the thread count, so they depend on the settings only. Worker processes
ignore SIGINT (a terminal sends it to the whole group: Ctrl-C is the coordinator's) and turn
SIGTERM (how the coordinator stops them) into KeyboardInterrupt, on which Optuna fails the
running trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import torch

from handgrad.data import Dataset
from handgrad.engine.errors import SettingError
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.files import command_line, finite_or_none
from handgrad.run.progress import ConfigDone, Progress
from handgrad.run.sweep import folder, study
from handgrad.run.sweep.spec import (
    METRICS,
    SELECT_BY,
    ConfigFailed,
    SweepError,
    SweepSpec,
    config_key,
    mask_url,
    run_dir_name,
)
from handgrad.run.train import preflight, train

POLL_SECONDS = 0.5  # how often the coordinator looks for configs its workers finished


@contextlib.contextmanager
def sweeping(sweep_dir: str | Path, spec: SweepSpec, workers: int = 1,
             storage: str | None = None, select_by: str = "val_loss",
             dataset: Dataset | None = None, threads: int = 1,
             heartbeat: tuple[int, int] = study.HEARTBEAT,
             progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The sweep in `sweep_dir` as a context. Entering validates everything before it writes
    anything, then runs the sweep (one worker, in this process) or starts it (worker
    processes, while the block does other work). Leaving waits for the workers and writes
    results.{json,csv}, their content into the dict the block got; an exception in the
    block (Ctrl-C included) stops the workers, and rerunning resumes. `progress` hears of
    every config that finishes.

        with sweeping(dir, spec, workers=2) as summary:
            ...                       # runs while the workers train
        summary                       # results.json's content
    """
    sweep_dir = Path(sweep_dir)
    spec, dataset = _checked(sweep_dir, spec, workers, storage, select_by, dataset, threads,
                             heartbeat)
    procs, errors, stop_watching, summary = [], None, None, {}
    lock = folder.acquire_lock(sweep_dir)
    try:
        with study.storage_errors(storage):
            sweep_id = (folder.check_record(sweep_dir, spec, storage) or
                        folder.write_record(sweep_dir, spec, storage))["id"]
            if storage is None:
                study.rewrite_cut_journal(sweep_dir)
            running = study.open_study(sweep_dir, spec, storage, heartbeat)
            study.resume(running, spec, storage is None,
                         lambda values, attrs: folder.result_row(sweep_dir, sweep_id, spec,
                                                                 values, attrs))
            kwargs = dict(sweep_dir=sweep_dir, spec=spec, storage=storage, threads=threads,
                          dataset=dataset, sweep_id=sweep_id, heartbeat=heartbeat)
            if workers > 1:  # forked before the watching thread starts
                procs, errors = start_workers(workers, kwargs)
            stop_watching = watch(running, spec, progress)
            if workers == 1:
                with torch_threads(threads):
                    run_worker(**kwargs)
        yield summary
        join_workers(procs, errors)
        stop_watching()
        with torch_threads(threads), study.storage_errors(storage):
            summary |= folder.collect(sweep_dir, sweep_id, spec, running, select_by, dataset)
    finally:  # after an exception, Ctrl-C included (the workers ignore it): stop them
        if stop_watching is not None:
            stop_watching()
        stop_workers(procs)  # a trial left RUNNING: failed by the heartbeat or the next run
        lock.release()


def _checked(sweep_dir: Path, spec: SweepSpec, workers: int, storage: str | None,
             select_by: str, dataset: Dataset | None, threads: int,
             heartbeat: tuple[int, int]) -> tuple[SweepSpec, Dataset]:
    """Everything checked before anything is written (the options, every config and its
    memory, the folder, the storage): `spec` with the command to record, and the data."""
    check_options(workers, threads, storage, select_by)
    spec.validate()
    # every config.json records the command: never with a database password in it
    spec = dataclasses.replace(spec, command=[mask_url(a) for a in
                                              (spec.command or command_line())])
    folder.check_record(sweep_dir, spec, storage)
    with torch_threads(threads):  # the data's statistics as the workers see them
        dataset = dataset if dataset is not None else load_data(spec.base)
    for values in spec.configs():  # train's own memory check, for every config
        try:
            preflight(spec.config_for(values), dataset, None)
        except ValueError as e:
            raise ValueError(f"config {config_key(values)}: {e}") from e
    if storage is not None:
        study.check_storage(spec, storage, heartbeat)
    return spec, dataset


def watch(running: optuna.Study, spec: SweepSpec,
          progress: Progress | None) -> Callable[[], None]:
    """Tell `progress` of the configs done, then of each that finishes, polling the study in
    a thread; returns the function that stops it after one last poll."""
    if progress is None:
        return lambda: None
    values = {config_key(v): v for v in spec.configs()}  # in the sweep's order
    seen = {k for k in study.done(running) if k in values}
    progress.sweep_start(len(values), len(seen))
    stop = threading.Event()

    def poll() -> None:
        while True:
            stopping = stop.wait(POLL_SECONDS)
            for key, trial in study.done(running).items():
                if key in values and key not in seen:
                    seen.add(key)
                    a, took = trial.user_attrs, trial.duration
                    progress.config_done(ConfigDone(
                        len(seen), len(values), dict(values[key]), a.get("status", "?"),
                        a.get("val_loss"), a.get("val_accuracy"),
                        None if took is None else took.total_seconds()))
            if stopping:  # once more after the workers ended: none goes unreported
                return

    thread = threading.Thread(target=poll, name="handgrad-sweep-watch", daemon=True)
    thread.start()

    def stop_watching() -> None:
        stop.set()
        thread.join()

    return stop_watching


def run_sweep(sweep_dir: str | Path, spec: SweepSpec, workers: int = 1, **options: Any
              ) -> dict[str, Any]:
    """Run (or finish) the sweep in `sweep_dir`, write results.{json,csv}, return their
    content. `options`: those of `sweeping`."""
    with sweeping(sweep_dir, spec, workers, **options) as summary:
        pass
    return summary


def check_options(workers: int, threads: int, storage: str | None, select_by: str) -> None:
    """Refuse (SettingError) a bad option before a sweep writes anything."""
    if select_by not in SELECT_BY:
        raise SettingError(f"unknown select_by {select_by!r}; choose from: "
                           f"{', '.join(SELECT_BY)}", "select_by")
    for name, value in (("workers", workers), ("threads", threads)):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or value < 1:
            raise SettingError(f"{name} must be {'>= 1' if whole else 'a whole number'}, got "
                               f"{value!r}", name)
    if storage is not None and not isinstance(storage, str):
        raise SettingError(f"storage must be a database URL, got {storage!r}", "storage")
    if workers > 1 and storage is not None and storage.startswith("sqlite"):
        raise SettingError("storage sqlite: SQLite cannot hand trials to several worker "
                           "processes safely (two may get the same one); use workers 1, the "
                           "default journal file, or PostgreSQL", "storage", "workers")


def run_worker(sweep_dir: Path, spec: SweepSpec, storage: str | None, threads: int,
               dataset: Dataset | None, sweep_id: str, heartbeat: tuple[int, int]) -> None:
    """Take waiting trials and train their configs until none is left. A trial's value is
    its validation loss (+inf for a diverged config); its user attributes hold the metrics
    and where its run directory is. `dataset`: the base config's data, if loaded already."""
    torch.set_num_threads(threads)
    running = study.open_study(sweep_dir, spec, storage, heartbeat)
    configs = spec.configs()
    space = {k: sorted({c[k] for c in configs}, key=str) for k in configs[0]}
    dataset = dataset if dataset is not None else load_data(spec.base)
    where = {"host": socket.gethostname(), "out": str(sweep_dir.resolve()), "sweep_id": sweep_id}

    def objective(trial: optuna.Trial) -> float:
        if study.CONFIG not in trial.user_attrs or not study.first_of_its_config(running, trial):
            raise optuna.TrialPruned("another trial runs this config, or none was waiting")
        values = trial.user_attrs[study.CONFIG]
        for name in values:
            trial.suggest_categorical(name, space[name])  # the enqueued value
        run_dir = Path("configs") / run_dir_name(values)
        for name, value in {**where, "run_dir": str(run_dir), "started": os.getpid()}.items():
            trial.set_user_attr(name, value)
        shutil.rmtree(sweep_dir / run_dir, ignore_errors=True)  # a dead attempt's files
        try:
            result = train(spec.config_for(values), dataset, sweep_dir / run_dir,
                           evaluate_test=False, command=spec.command)
        except OSError:  # the disk or a file system: may well pass on a rerun
            raise
        except Exception as e:  # the config's own settings: fails again on a rerun
            raise ConfigFailed.of(config_key(values), e) from None
        summary = finite_or_none(result.summary())
        for name in METRICS:
            trial.set_user_attr(name, summary[name])
        val_loss = summary["val_loss"]
        if result.status != "completed" or val_loss is None or not math.isfinite(val_loss):
            return math.inf
        return val_loss

    while study.has_waiting(running):
        running.optimize(objective, n_trials=1)


def start_workers(n: int, kwargs: dict[str, Any]):
    """`n` worker processes running `run_worker(**kwargs)`, started with SIGINT ignored, and
    the queue of their one-line failures. Forked where `start_method` allows, so that they
    share the loaded data; spawned otherwise, each loading the data itself."""
    base = kwargs["spec"].base
    if start_method(kwargs["threads"], base) == "fork":
        ctx = mp.get_context("fork")
        if base.engine == "autograd":  # torch.optim imports torch._dynamo once, for all
            importlib.import_module("torch._dynamo")
    else:
        ctx, kwargs = mp.get_context("spawn"), {**kwargs, "dataset": None}
    errors = ctx.SimpleQueue()
    procs = [ctx.Process(target=_worker_process, args=(errors, kwargs)) for _ in range(n)]
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for p in procs:
            p.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
    return procs, errors


def _worker_process(errors, kwargs: dict[str, Any]) -> None:
    """A worker process: its failure is one line sent to the coordinator, not a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the coordinator
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # a failure in Optuna's heartbeat thread: one line to the coordinator, not a traceback
    threading.excepthook = lambda e: errors.put(f"heartbeat: {' '.join(str(e.exc_value).split())}")
    try:
        with study.storage_errors(kwargs["storage"]):
            run_worker(**kwargs)
    except KeyboardInterrupt:
        errors.put("a worker was stopped by SIGTERM")
        sys.exit(1)
    except Exception as e:  # a ConfigFailed as itself: the coordinator then never says "rerun"
        errors.put(e if isinstance(e, ConfigFailed) else " ".join(str(e).split()) or
                   type(e).__name__)
        sys.exit(1)


def join_workers(procs: list, errors) -> None:
    """Wait for the workers; raise the first deterministic config failure, else a SweepError
    with their reasons if any failed."""
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    reasons = []
    while failed and not errors.empty():
        reasons.append(errors.get())
    deterministic = [r for r in reasons if isinstance(r, ConfigFailed)]
    if deterministic:  # a rerun fails the same way: never say "rerun"
        raise deterministic[0]
    if failed:
        why = "; ".join(dict.fromkeys(reasons)) or f"exit codes {failed}"
        raise SweepError(f"{len(failed)} sweep worker(s) failed ({why}); rerun the same "
                         "command to finish the sweep")


def stop_workers(procs: list) -> None:
    """SIGTERM each worker (Optuna fails its trial), SIGKILL one stuck for 10 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(10)
        if p.is_alive():  # stuck, say on a database that does not answer
            p.kill()
            p.join()


def start_method(threads: int, config: TrainConfig) -> str:
    """"fork" when workers train single-threaded on the CPU (where fork exists), else
    "spawn": a forked child that runs OpenMP with several threads after its parent did can
    deadlock (GNU libgomp), and one cannot use CUDA once its parent has."""
    on_cpu = config.resolved_device().type == "cpu"
    return "fork" if threads == 1 and on_cpu and "fork" in mp.get_all_start_methods() \
        else "spawn"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
