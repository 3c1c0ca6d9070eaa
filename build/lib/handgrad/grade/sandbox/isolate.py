"""Run a submission in a child process, with limits, and bring back what it computed.

The children are forked from a multiprocessing fork server that has imported torch and
handgrad once, so a child starts in tens of milliseconds. Each child:

- starts a new session (its own process group, killed whole at the end), in a fresh empty
  temporary working directory (also its HOME and TMPDIR), with stdin from /dev/null and
  stdout and stderr going to a file of which the report keeps the first and last KBs;
- on Linux, loses the network, sees every file system read-only but its working
  directory, sees empty folders in place of /tmp, /var/tmp, /dev/shm and the folder of the
  fork server's socket (a child that reached that socket could have the server run its code
  outside every namespace), has no pipe to multiprocessing's resource tracker, and runs
  the submission as PID 1 of its own PID namespace, so that nothing it starts outlives it
  (`confine.py`); whether each held is reported back before any of the submission's code
  runs;
- gets an environment of PATH, the locale and TZ only (HOME and TMPDIR its folder);
- gets rlimits: address space (what it had mapped at start plus `memory_mb`), CPU time
  (the wall timeout plus one second), file size (`FILE_LIMIT`), no core dumps;
- loads the code, runs the function on each case the parent sent and writes what it
  filled with `torch.save`; the parent reads it back with `torch.load(weights_only=True)`
  and judges it. A child that ends any other way returns nothing.

What this does not stop: reading any file the user running the grader can read (the
other submissions included), writing outside the working directory where the namespaces
are refused (the result says so, and then processes that start a session of their own can
outlive the child), and using the CPU and memory up to the limits. Run the grader inside a
container
(docs/grading.md) for submissions you do not trust.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from pathlib import Path
from typing import Any

import torch

from handgrad.grade.sandbox import runner
from handgrad.grade.sandbox.confine import become_pid_one, confine, new_pid_namespace
from handgrad.grade.sandbox.rlimits import close_resource_tracker, redirect_output, set_limits
from handgrad.grade.submission import NoFunctionError, SubmissionError, load_function

FILE_LIMIT = 32 * 2**20  # bytes any one file the child writes may reach (its output included)
RESULT_LIMIT = 256 * 2**20
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_CONTEXT: list[Any] = []
# Process.start() polls the other children (multiprocessing's _cleanup), reading their exit
# status from the fork server's pipe: a read racing another thread's own read would lose
# it (returncode 255). Starting and reaping children under one lock keeps the reads apart.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """Per submission: wall time (s), address space beyond start-up (MB), KB of output kept
    (half from the start, half from the end), and whether the network stays reachable."""

    timeout: float = 60.0
    memory_mb: int = 4096
    output_kb: int = 4
    network: bool = False


@dataclass
class ChildOutcome:
    """status: "ok" (results holds one dict per case), "load" (the code failed to load),
    "no_function", "exited", "timeout", "cpu" or "unreadable"."""

    status: str
    results: list[dict] = field(default_factory=list)
    error: str | None = None
    exit_code: int | None = None
    output: str = ""
    confined: dict[str, bool] = field(default_factory=dict)  # network, filesystem, processes
    seconds: float = 0.0


def _context() -> Any:
    """The fork server context, its server importing torch and handgrad's runner once."""
    if not _CONTEXT:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "handgrad.grade.sandbox.isolate"])
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


class _Popen(popen_forkserver.Popen):
    """multiprocessing's fork-server launch, less its re-import of the parent's `__main__`
    in the child (a script or notebook kernel would be run again in every child)."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Child(mp.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)


def run_isolated(chunks: list[tuple[str, str]], folder: Path | None, function: str,
                 payload: bytes, limits: Limits) -> ChildOutcome:
    """Run `function` of the submission `chunks` in a child process on every case of
    `payload` (the case specs, `runner.encode`d)."""
    ctx = _context()
    with _LOCK:
        forkserver.ensure_running()
    workdir = Path(os.path.realpath(tempfile.mkdtemp(prefix="handgrad-grade-")))
    job = {"chunks": chunks, "folder": None if folder is None else str(folder),
           "function": function, "payload": payload, "workdir": str(workdir),
           "limits": limits, "hide": _hidden_folders()}
    receive, send = ctx.Pipe(duplex=False)
    start = time.perf_counter()
    child = _Child(target=_child_main, args=(job, send), daemon=True)
    try:
        with _LOCK:
            child.start()
        send.close()
        timed_out = not mp.connection.wait([child.sentinel], limits.timeout)
        _kill_group(child.pid)  # what it left behind, or all of it on a timeout
        if timed_out:
            child.kill()
        mp.connection.wait([child.sentinel])
        with _LOCK:
            child.join()
        outcome = _outcome(child.exitcode, timed_out, workdir, limits)
        outcome.confined = _confinement(receive)
        outcome.output = _read_output(workdir / "output.txt", limits.output_kb)
    finally:
        receive.close()
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _outcome(code: int | None, timed_out: bool, workdir: Path, limits: Limits) -> ChildOutcome:
    if timed_out:
        return ChildOutcome("timeout", error=f"the submission did not finish within "
                                             f"{limits.timeout:g} s (timeout)")
    result = _read_result(workdir / "result.pt") if code == 0 else None
    if result is not None:
        return ChildOutcome(result["status"], result.get("results", []), result.get("error"),
                            code)
    if code == -signal.SIGXCPU:
        return ChildOutcome("cpu", error="the submission used up its CPU time limit",
                            exit_code=code)
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return ChildOutcome("exited", error=f"the submission was killed by {name} before "
                                            "returning gradients", exit_code=code)
    if code == 0 and (workdir / "result.pt").exists():
        return ChildOutcome("unreadable", error="the submission's results could not be read",
                            exit_code=code)
    return ChildOutcome("exited", error=f"the submission exited with code {code} before "
                                        "returning gradients", exit_code=code)


def _read_result(path: Path) -> dict | None:
    """The child's result file, or None when absent, too large, or not the expected form."""
    try:
        if path.stat().st_size > RESULT_LIMIT:
            return None
        data = torch.load(path, weights_only=True)
    except Exception:  # anything the child left there that is not a readable result
        return None
    ok = (isinstance(data, dict) and data.get("status") in ("ok", "load", "no_function")
          and isinstance(data.get("results", []), list)
          and isinstance(data.get("error") or "", str))
    return data if ok else None


def _confinement(receive: Any) -> dict[str, bool]:
    """What the child reported before the submission's code ran (False when it did not)."""
    held = {"network": False, "filesystem": False, "processes": False}
    with contextlib.suppress(Exception):
        if receive.poll(0):
            report = json.loads(receive.recv_bytes(256))
            held = {k: report.get(k) is True for k in held}
    return held


def _read_output(path: Path, kb: int) -> str:
    """The first and last kb/2 KB of the child's output, with a note of what was cut."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            half = kb * 512
            if size <= 2 * half:
                return f.read().decode("utf-8", "replace")
            head = f.read(half)
            f.seek(size - half)
            tail = f.read(half)
    except OSError:
        return ""
    cut = f"\n[... {size - 2 * half} bytes of output cut ...]\n"
    return head.decode("utf-8", "replace") + cut + tail.decode("utf-8", "replace")


def _child_main(job: dict, send: Any) -> None:
    """The child: confine itself, report the network state, load, run, write, exit."""
    workdir, limits = job["workdir"], job["limits"]
    os.setsid()
    os.chdir(workdir)
    kept = {k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT}
    os.environ.clear()  # the grader's own variables (tokens, paths) are not the child's
    os.environ.update(kept, HOME=workdir, TMPDIR=workdir)
    redirect_output(os.path.join(workdir, "output.txt"))
    close_resource_tracker()
    held = {"network": False, "filesystem": False, "processes": False}
    if not limits.network:
        held = {**confine(workdir, job["hide"]), "processes": new_pid_namespace()}
    if held["processes"]:
        held["processes"] = become_pid_one()
    os.chdir(workdir)  # the bind mount, not the read-only folder under it
    send.send_bytes(json.dumps(held).encode())
    send.close()
    set_limits(limits.timeout, limits.memory_mb, FILE_LIMIT)
    torch.set_num_threads(1)
    specs = torch.load(_bytes_io(job["payload"]), weights_only=True)
    folder = None if job["folder"] is None else Path(job["folder"])
    result = _load_and_run(job["chunks"], folder, job["function"], specs)
    tmp = os.path.join(workdir, "result.pt.tmp")
    with open(tmp, "wb") as f:
        f.write(runner.encode(result))
    os.replace(tmp, os.path.join(workdir, "result.pt"))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _load_and_run(chunks, folder, function, specs) -> dict:
    """Load under the autograd watch too (the cases are in this process by then: autograd
    on them while loading is autograd use), then run every case."""
    try:
        with runner.watch_autograd() as watch:
            fn = load_function(chunks, function, folder)
    except NoFunctionError as e:
        return {"status": "no_function", "error": str(e)}
    except SubmissionError as e:
        return {"status": "load", "error": str(e)}
    loading = [f"{use} while the submission loaded" for use in sorted(set(watch.used))]
    results = [runner.run_case(fn, spec) for spec in specs]
    for result in results:
        if "autograd" in result:
            result["autograd"] = loading + result["autograd"]
    return {"status": "ok", "results": results}


def _hidden_folders() -> tuple[str, ...]:
    """What the child must not see: the temporary folders, the fork server's socket's."""
    server = forkserver._forkserver._forkserver_address
    folders = ["/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()]
    if isinstance(server, str) and server.startswith("/"):
        folders.append(os.path.dirname(server))
    return tuple(folders)


def _bytes_io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
