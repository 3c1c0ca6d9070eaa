"""Worker processes of a sweep: threads, signals, start method, and how they end."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import threading
from collections.abc import Iterator

import torch

from handgrad.run.config import TrainConfig
from handgrad.run.sweep_spec import SELECT_BY, ConfigFailed, SweepError


def check_options(workers: int, threads: int, storage: str | None, select_by: str) -> None:
    """Refuse (ValueError) a bad worker or thread count, storage or --select-by before a
    sweep writes anything; bools and floats are not counts."""
    if not isinstance(select_by, str) or select_by not in SELECT_BY:
        raise ValueError(f"unknown --select-by {select_by!r}; choose from: "
                         f"{', '.join(SELECT_BY)}")
    for name, value in (("--workers", workers), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if storage is not None and not isinstance(storage, str):
        raise ValueError(f"--storage must be a database URL (a string), got {storage!r}")
    if workers > 1 and storage is not None and storage.startswith("sqlite"):
        raise ValueError("--storage sqlite: SQLite cannot hand trials to several worker "
                         "processes safely (two may get the same one); use --workers 1, "
                         "the default journal file, or PostgreSQL")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def die_with_parent() -> None:
    """Linux: have the kernel kill this worker when its coordinator dies (even by SIGKILL),
    so that no orphan keeps training a config the next run will redo."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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


def start_method(threads: int, config: TrainConfig) -> str:
    """How to start sweep workers: "fork" when they train single-threaded on the CPU (where
    fork exists), else "spawn". A forked child that runs OpenMP with several threads after
    its parent did can deadlock (GNU libgomp), and one cannot use CUDA at all once its
    parent has (torch refuses to re-initialise it)."""
    on_cpu = config.resolved_device().type == "cpu"
    if threads == 1 and on_cpu and "fork" in mp.get_all_start_methods():
        return "fork"
    return "spawn"


def join_workers(procs: list, errors) -> None:
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        reasons = []
        while errors is not None and not errors.empty():
            reasons.append(errors.get())
        deterministic = [r for r in reasons if isinstance(r, ConfigFailed)]
        if deterministic:  # a rerun fails the same way: never say "rerun"
            raise deterministic[0]
        why = "; ".join(dict.fromkeys(reasons)) or f"exit codes {failed}"
        raise SweepError(f"{len(failed)} sweep worker(s) failed ({why}); rerun the same "
                         "command to finish the sweep")


def raise_interrupt(signum, frame) -> None:
    """A signal handler: KeyboardInterrupt, on which Optuna marks the running trial FAIL."""
    raise KeyboardInterrupt
