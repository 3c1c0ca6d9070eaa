"""The grading server: a process forked from the grader once, before the grader draws any
secret (the cases' salt) or reads any submission, that forks a keeper for each submission.

Forking from the grader itself, which has imported torch already, costs milliseconds and
no second start of Python and torch. The server holds nothing but its socket: it closes
every other descriptor it inherited, and each request carries only two descriptors (the
keeper's channel to the grader and the file that collects the submission's output); the
job itself reaches the keeper over that channel, after the fork, so no submission's code or
cases ever sit in the server's memory.

The server ends when the grader's end of its socket closes (and with PR_SET_PDEATHSIG,
when forked from the main thread), each keeper with the server, and the submission with
its keeper: nothing outlives a grader that is killed. `remove_leftovers()`
removes the working folders of graders that died without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from handgrad.grade.sandbox.confine import die_with_parent
from handgrad.grade.sandbox.keeper import keep

PREFIX = "handgrad-grade-"
_SERVER: list[tuple[int, socket.socket]] = []
_LOCK = threading.Lock()


class GraderError(Exception):
    """The grader could not grade (its own failure, never the submission's)."""


def start() -> None:
    """Fork the server now, if it is not running: call before any secret exists in this
    process. From the thread that lives as long as the grading (the main thread)."""
    with _LOCK:
        if _SERVER:
            return
        remove_leftovers()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        main = threading.current_thread() is threading.main_thread()
        pid = os.fork()
        if pid == 0:
            mine.close()
            _serve(theirs, parent, main)
        theirs.close()
        _SERVER.append((pid, mine))


def started() -> bool:
    return bool(_SERVER)


def launch(fds: list[int]) -> None:
    """Have the server fork a keeper that gets `fds` (its channel, the output file)."""
    if not _SERVER:
        raise GraderError("the grading server was not started before the cases were drawn")
    pid, sock = _SERVER[0]
    try:
        with _LOCK:
            socket.send_fds(sock, [b"k"], fds)
    except OSError as e:
        raise GraderError(f"the grading server (pid {pid}) is gone ({e.strerror}); "
                          "start the grader again") from None


def _serve(sock: socket.socket, parent: int, main: bool) -> None:
    """The server's loop: a keeper for each request, until the grader's end of the socket
    closes (the grader ended, however it ended)."""
    try:
        if main:  # PR_SET_PDEATHSIG follows the thread that forked: only the main one lasts
            die_with_parent(parent)
        os.setsid()  # a Ctrl-C in the grader's terminal is the grader's to handle
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        own = sock.fileno()
        os.closerange(3, own)
        os.closerange(own + 1, _max_fd())
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the keepers
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        me = os.getpid()
        while True:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 4)
            if not msg:
                break
            if os.fork() == 0:
                sock.close()
                keep(fds, me)
            for fd in fds:
                os.close(fd)
    finally:
        os._exit(0)


def _max_fd() -> int:
    import resource

    return min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 16)


def fallback_workdir() -> str:
    """Where a child works when the mount namespace is refused (a name; the keeper makes
    it): in the temporary folder, named after this grader's pid."""
    return os.path.join(tempfile.gettempdir(),
                        f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}")


def remove_leftovers() -> list[str]:
    """Remove the working folders of graders that are no longer running; their paths."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = path.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True
