"""A sweep's workers: each takes waiting trials from the study and trains their configs,
in this process or in worker processes (threads, signals, start method, how they end).

Every config trains on `threads` torch threads whatever the number of workers: float32
results depend on the thread count, so they depend on the settings only. Worker processes
ignore SIGINT (a terminal sends it to the whole group: Ctrl-C is the coordinator's) and turn
SIGTERM (how the coordinator stops them) into KeyboardInterrupt, on which Optuna fails the
running trial.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import torch

from handgrad.data import Dataset
from handgrad.engine.errors import SettingError
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.files import finite_or_none
from handgrad.run.sweep.spec import (
    METRICS,
    SELECT_BY,
    ConfigFailed,
    SweepError,
    SweepSpec,
    config_key,
    run_dir_name,
)
from handgrad.run.sweep.study import (
    CONFIG,
    HEARTBEAT,
    first_of_its_config,
    has_waiting,
    open_study,
    storage_errors,
)
from handgrad.run.train import train


def run_worker(sweep_dir: str | Path, spec: SweepSpec, storage: str | None, threads: int,
               dataset: Dataset | None = None, sweep_id: str = "",
               heartbeat: tuple[int, int] = HEARTBEAT) -> None:
    """Take waiting trials and train their configs until none is left. A trial's value is
    its validation loss (+inf for a diverged config); its user attributes hold the metrics
    and where its run directory is. `dataset`: the base config's data, if loaded already."""
    torch.set_num_threads(threads)
    sweep_dir = Path(sweep_dir)
    study = open_study(sweep_dir, spec, storage, heartbeat)
    space = spec.search_space()
    dataset = dataset if dataset is not None else load_data(spec.base)
    where = {"host": socket.gethostname(), "out": str(sweep_dir.resolve()), "sweep_id": sweep_id}

    def objective(trial: optuna.Trial) -> float:
        if CONFIG not in trial.user_attrs or not first_of_its_config(study, trial):
            raise optuna.TrialPruned("another trial runs this config, or none was waiting")
        values = trial.user_attrs[CONFIG]
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

    while has_waiting(study):
        study.optimize(objective, n_trials=1)


def check_options(workers: int, threads: int, storage: str | None, select_by: str) -> None:
    """Refuse (ValueError) a bad worker or thread count, storage or select_by before a
    sweep writes anything; bools and floats are not counts."""
    if not isinstance(select_by, str) or select_by not in SELECT_BY:
        raise SettingError(f"unknown select_by {select_by!r}; choose from: "
                           f"{', '.join(SELECT_BY)}", "select_by")
    for name, value in (("workers", workers), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(f"{name} must be a whole number, got {value!r}", name)
        if value < 1:
            raise SettingError(f"{name} must be >= 1, got {value}", name)
    if storage is not None and not isinstance(storage, str):
        raise SettingError(f"storage must be a database URL (a string), got {storage!r}",
                           "storage")
    if workers > 1 and storage is not None and storage.startswith("sqlite"):
        raise SettingError("storage sqlite: SQLite cannot hand trials to several worker "
                           "processes safely (two may get the same one); use workers 1, the "
                           "default journal file, or PostgreSQL", "storage", "workers")


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
    with sigint_ignored():
        for p in procs:
            p.start()
    return procs, errors


def _worker_process(errors, kwargs: dict[str, Any]) -> None:
    """A worker process: its failure is one line sent to the coordinator, not a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _die_with_parent()
    # a failure in Optuna's heartbeat thread: one line to the coordinator, not a traceback
    threading.excepthook = lambda e: errors.put(f"heartbeat: {' '.join(str(e.exc_value).split())}")
    try:
        with storage_errors(kwargs["storage"]):
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
    if not failed:
        return
    reasons = []
    while errors is not None and not errors.empty():
        reasons.append(errors.get())
    deterministic = [r for r in reasons if isinstance(r, ConfigFailed)]
    if deterministic:  # a rerun fails the same way: never say "rerun"
        raise deterministic[0]
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
    if threads == 1 and on_cpu and "fork" in mp.get_all_start_methods():
        return "fork"
    return "spawn"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored inside (where this thread may change signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when its coordinator dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
