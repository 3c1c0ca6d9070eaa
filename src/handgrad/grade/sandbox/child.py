"""The process that runs the submission, as the keeper forked it: it finishes its
confinement, checks that the grading code works in it, says so (frame "C"), and only then
runs the entry's code: `load(job, folder)` loads the submission, and, when that gives a
function, the cases are asked for (frame "L") and `run(function, cases)` runs it on them;
the result goes up as frame "R". (A job with a "call" asks for the cases first, then
`call(chunks, folder, function, specs)` loads and runs.) It ends with `os._exit`: never
back into the server's loop.

The entry is a module named by the job (`handgrad.grade.sandbox.runner` for
backpropagation), so that other assignments reuse the same sandbox.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from handgrad.grade.sandbox import channel, confine
from handgrad.grade.sandbox.rlimits import redirect_output, set_limits

FILE_LIMIT = 32 * 2**20  # bytes any one file the child writes may reach (its output included)
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")


def run_child(sock: socket.socket, output: int, job: dict, workdir: str,
              held: dict[str, bool]) -> None:
    """Set up, report, run the entry, send its result; ends the process."""
    try:
        entry = _set_up(output, job, workdir, held)
    except BaseException as e:  # ours, before any of the submission's code
        with contextlib.suppress(Exception):
            channel.send(sock, b"E", f"{type(e).__name__}: {e}".encode())
        os._exit(70)
    channel.send(sock, b"C", json.dumps(held).encode())
    code = 0
    try:
        folder = confine.SUBMISSION if held["filesystem"] else job["submission"]
        result = _run_entry(entry, job, folder if job["importable"] else None, sock)
        channel.send(sock, b"R", entry.encode(result))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a channel the submission closed, a result it broke
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


def _set_up(output: int, job: dict, workdir: str, held: dict[str, bool]) -> Any:
    confine.die_with_parent(os.getppid())  # 0 as PID 1 of a new namespace: the check holds
    os.setsid()  # where there is no PID namespace, the keeper kills this group at the end
    if held["filesystem"]:
        held["filesystem"] = confine.finish(held["processes"])
    os.chdir(workdir)
    kept = {k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT}
    os.environ.clear()  # the grader's own variables (tokens, paths) are not the child's
    os.environ.update(kept, HOME=workdir, TMPDIR=workdir)
    redirect_output(output)
    os.close(output)
    _check_visible(job["allowed"])
    entry = importlib.import_module(job["entry"])  # imported by the grader: in sys.modules
    if job.get("call"):
        _call(job["call"])
    entry.preflight()  # the grading code works here: a failure now is ours
    set_limits(job["cpu_s"], job["limits"]["memory_mb"], FILE_LIMIT)
    return entry


def _run_entry(entry: Any, job: dict, folder: str | None, sock: socket.socket) -> dict:
    if job.get("call"):  # one function that loads and runs: the cases come first
        call = _call(job["call"])
        channel.send(sock, b"L")
        _, cases = channel.receive(sock, 2**30)
        specs = entry.decode(cases)
        return call(job["chunks"], folder and Path(folder), job["function"], specs)
    loaded = entry.load(job, folder)
    if isinstance(loaded, dict):  # it did not load: nothing to run
        return loaded
    channel.send(sock, b"L")
    _, cases = channel.receive(sock, 2**30)
    return entry.run(loaded, cases)


def _check_visible(allowed: list[str]) -> None:
    """Every allowed path, Python's standard library and the installed packages torch and
    handgrad come from are here (a child that cannot import them would blame the student)."""
    import torch

    handgrad = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folders = [os.path.dirname(os.__file__), os.path.dirname(torch.__file__), handgrad]
    missing = [p for p in [*allowed, *folders] if not os.path.lexists(p)]
    if missing:
        raise RuntimeError(f"the child cannot see {missing[0]} (of {len(missing)} paths "
                           "it needs)")


def _call(name: str) -> Any:
    """The function "module:qualname" (found before the submission's code runs)."""
    module, _, qualname = name.partition(":")
    return getattr(importlib.import_module(module), qualname)
