"""The keeper: the process between the grading server and the submission, which runs only
our code. It reads the job from the grader, confines itself (`confine.enter`), forks the
process that runs the submission (PID 1 of a new PID namespace where the system allows),
and relays between the two: the cases go down only once the submission has loaded, and what
comes up is reported with what the keeper saw itself.

What the keeper reports to the grader (frame "D", JSON), and only it:
- "held": which protections held (its own, and the submission process's `finish`; also
  sent alone, as frame "H", as soon as the submission process has reported);
- "started": whether the submission process reached the submission's code (frame "C" from
  it, sent right before loading the code; a process that ends before that is the grader's
  failure, with the reason from frame "E" when there is one);
- "requests": how many times the cases were asked for (frame "L", answered once),
  "results": how many result frames ("R") came and "early": whether one came before the
  cases were asked for; only the first result is passed on (frame "R" to the grader);
- "code" / "signal" and "cpu": how the submission process ended and the CPU seconds it used.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import traceback

from handgrad.grade.sandbox import channel, confine
from handgrad.grade.sandbox.child import run_child  # imported here: the child may not see it

JOB_LIMIT = 64 * 2**20
RESULT_LIMIT = 256 * 2**20


def keep(fds: list[int], server: int) -> None:
    """The keeper's life; it ends the process."""
    code = 0
    ctrl = socket.socket(fileno=fds[0])
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        confine.die_with_parent(server)
        os.setsid()
        _, data = channel.receive(ctrl, JOB_LIMIT)
        job = json.loads(data)
        _run(ctrl, fds[1], job)
    except BaseException as e:  # ours: the grader reports it, never as the submission's
        code = 70
        with contextlib.suppress(Exception):
            where = traceback.extract_tb(e.__traceback__)[-1]
            channel.send(ctrl, b"E", f"the grading child could not start: {type(e).__name__}: "
                                     f"{e} ({os.path.basename(where.filename)}, line "
                                     f"{where.lineno})".encode())
    finally:
        os._exit(code)


def _run(ctrl: socket.socket, output: int, job: dict) -> None:
    held = confine.enter(job["allowed"], job["submission"], job["network"])
    if held["filesystem"]:
        workdir = confine.WORK
    else:
        workdir = job["fallback_workdir"]
        os.makedirs(workdir, mode=0o700)
    held["processes"] = confine.new_pid_namespace()
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        mine.close()
        ctrl.close()
        run_child(theirs, output, job, workdir, held)
    theirs.close()
    os.close(output)
    channel.send(ctrl, b"P", json.dumps({"keeper": os.getpid(), "child": pid}).encode())
    _, payload = channel.receive(ctrl, JOB_LIMIT)
    report, result = _relay(mine, payload, pid, ctrl, held)
    _, status, usage = os.wait4(pid, 0)
    report.update(cpu=usage.ru_utime + usage.ru_stime, held=held | report.pop("finish", {}))
    if os.WIFSIGNALED(status):
        report["signal"] = os.WTERMSIG(status)
    else:
        report["code"] = os.WEXITSTATUS(status)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # what it left behind where there is no PID namespace
    channel.send(ctrl, b"D", json.dumps(report).encode())
    if result is not None:
        channel.send(ctrl, b"R", result)


def _relay(sock: socket.socket, payload: bytes, pid: int, ctrl: socket.socket,
           held: dict) -> tuple[dict, bytes | None]:
    """Serve the submission process until it ends: the cases once, the first result kept;
    the protections that held go to the grader as soon as they are known (frame "H")."""
    report = {"started": False, "requests": 0, "results": 0, "early": False, "error": None}
    result = None
    ended = _pidfd(pid)
    try:
        while True:
            ready, _, _ = select.select([sock] + ([ended] if ended is not None else []), [], [],
                                        None if ended is not None else 0.05)
            if sock not in ready and (ended is not None or _exited(pid)):
                break  # it ended, and nothing is left to read
            if sock not in ready:
                continue
            try:
                kind, data = channel.receive(sock, RESULT_LIMIT)
            except (channel.ChannelClosed, OSError):
                break
            started = report["started"]
            result = _frame(report, kind, data, sock, payload, result)
            if report["started"] and not started:
                channel.send(ctrl, b"H", json.dumps(held | report["finish"]).encode())
    finally:
        if ended is not None:
            os.close(ended)
    return report, result


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` ends (None before Linux 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pid: int) -> bool:
    """Whether `pid` has ended, without reaping it."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


def _frame(report: dict, kind: bytes, data: bytes, sock: socket.socket, payload: bytes,
           result: bytes | None) -> bytes | None:
    if kind == b"C" and not report["started"]:
        report["started"] = True
        report["finish"] = {k: v is True for k, v in json.loads(data).items()}
    elif kind == b"E" and not report["started"]:
        report["error"] = data.decode("utf-8", "replace")[:500]
    elif kind == b"L":
        report["requests"] += 1
        with contextlib.suppress(OSError):
            channel.send(sock, b"P", payload if report["requests"] == 1 else b"")
    elif kind == b"R":
        report["results"] += 1
        report["early"] = report["early"] or report["requests"] == 0
        return data if result is None else result
    return result
