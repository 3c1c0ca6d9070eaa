"""Run a submission in a confined child process and bring back what it computed: the
grader's side of the sandbox.

Four processes take part: the grader (this one; it judges), the grading server
(`server.py`, forked from the grader before any secret exists), a keeper a submission
(`keeper.py`, only our code: it confines itself and relays) and the process that runs the
submission (`child.py`), PID 1 of its own PID namespace where the system allows. The
grader gives the keeper a socket and a memory file for the submission's output; over the
socket it sends the job, then the cases, and reads back the keeper's report and the one
result the keeper passed on. Nothing the submission writes anywhere else is read.

The child sees only what it needs (`confine.py`): the Python installation and the packages
it imports, read-only, its own submission, read-only, and an empty working folder. It gets
an environment of PATH, the locale and TZ (HOME and TMPDIR its folder), stdin from
/dev/null, and rlimits (`rlimits.py`): address space, CPU time, file size, no core dumps.
`run_isolated` is the entry for backpropagation; `run_sandboxed` runs any entry module with
the same interface (`load`, `run`, `preflight`, `encode`, as `runner.py`).

Whatever goes wrong before the submission's code starts, or in this process, raises
`GraderError`: it is never reported as the submission's failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgrad.grade.sandbox import channel, server
from handgrad.grade.sandbox.keeper import JOB_LIMIT, RESULT_LIMIT
from handgrad.grade.sandbox.server import GraderError

SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc/ld.so.cache",
          "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
HELD = ("network", "filesystem", "processes")
HANDGRAD = str(Path(__file__).resolve().parents[2])  # the handgrad package's folder
__all__ = ["ChildOutcome", "GraderError", "Limits", "allowed_paths", "isolation", "probe",
           "run_isolated", "run_sandboxed"]


@dataclass(frozen=True)
class Limits:
    """Per submission: wall time (s), address space beyond start-up (MB), KB of output kept
    (half from the start, half from the end), whether the network stays reachable, and
    CPU time (s)."""

    timeout: float = 60.0
    memory_mb: int = 4096
    output_kb: int = 4
    network: bool = False
    cpu_s: int | None = None  # CPU seconds (soft: SIGXCPU; hard, one more: SIGKILL)

    @property
    def cpu(self) -> int:
        """The CPU time limit: `cpu_s`, or by default the wall time plus one second."""
        return self.cpu_s if self.cpu_s is not None else int(self.timeout) + 1


@dataclass
class ChildOutcome:
    """status: "ok" (results holds one dict per case), "load" (the code failed to load),
    "no_function", "exited", "timeout", "cpu", "forged" or "unreadable"."""

    status: str
    results: list[dict] = field(default_factory=list)
    error: str | None = None
    exit_code: int | None = None
    output: str = ""
    confined: dict[str, bool] = field(default_factory=dict)  # network, filesystem, processes
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)  # the whole result the entry sent


def allowed_paths() -> list[str]:
    """What a child may see of this machine: the system's libraries, this Python's prefixes,
    the entries of sys.path that hold installed packages (site-packages, anything under a
    prefix), and the folders of handgrad and torch (an editable install's source folder
    holds more than handgrad: only handgrad is shown). Each link's target too."""
    prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    return list(_allowed(tuple(sys.path), prefixes))


@functools.cache
def _allowed(path: tuple[str, ...], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    found = set(SYSTEM) | set(prefixes)
    found |= {p for p in path if p and os.path.isabs(p) and _installed(p, prefixes)}
    found |= {HANDGRAD, os.path.dirname(torch.__file__)}
    found |= {os.path.realpath(p) for p in found}
    return tuple(sorted(p for p in found if os.path.lexists(p) and p != "/"))


def _installed(path: str, prefixes: tuple[str, ...]) -> bool:
    under = any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)
    return under or "site-packages" in path or "dist-packages" in path


def run_isolated(chunks: list[tuple[str, str]], folder: Path | None, function: str,
                 payload: bytes, limits: Limits, submission: Path | None = None,
                 entry: Callable | None = None) -> ChildOutcome:
    """Run `function` of the submission `chunks` in a child on every case of `payload` (the
    case specs, `runner.encode`d). `submission`: the file or folder the child may see
    (read-only); `folder`: given when the submission's folder is importable. `entry`: a
    module-level `entry(chunks, folder, function, specs) -> {"status", "results", "error"}`
    run in the child instead (it gets the cases before it loads the code; an entry module
    with `load` and `run`, through `run_sandboxed`, gets them after)."""
    seen = submission if submission is not None else folder
    job = {"chunks": chunks, "function": function}
    if entry is not None:
        job["call"] = f"{entry.__module__}:{entry.__qualname__}"
    outcome = run_sandboxed("handgrad.grade.sandbox.runner", job, payload, limits,
                            seen, importable=folder is not None)
    if outcome.status == "ok":
        outcome.results = outcome.data.get("results", [])
    return outcome


def run_sandboxed(entry: str, job: dict[str, Any], payload: bytes, limits: Limits,
                  submission: Path | None = None, importable: bool = False) -> ChildOutcome:
    """Run the entry module `entry` in a confined child: `load(job, folder)` there, then
    `run(function, payload)`; the dict it returns comes back as `outcome.data` (status
    "ok", "load" or "no_function" from the entry; the others from the sandbox)."""
    server.start()
    path = None if submission is None else os.path.realpath(submission)
    workdir = server.fallback_workdir()
    full = {**job, "entry": entry, "allowed": allowed_paths(), "submission": path,
            "importable": importable, "network": limits.network, "limits": asdict(limits),
            "cpu_s": limits.cpu, "fallback_workdir": workdir}
    mine, theirs = socket.socketpair()
    output = _output_file()
    start = time.perf_counter()
    pids: dict[str, int] = {}
    ended = False
    try:
        server.launch([theirs.fileno(), output])
        theirs.close()
        channel.send(mine, b"J", json.dumps(full).encode())
        report, result = _collect(mine, payload, limits, pids)
        ended = not report.get("timeout")
    finally:
        if not ended:  # a keeper that ended was reaped: its pid may be another's by now
            _kill(pids)
        mine.close()
        theirs.close()
        text = _read_output(output, limits.output_kb)
        os.close(output)
        shutil.rmtree(workdir, ignore_errors=True)
    outcome = _outcome(report, result, limits)
    outcome.output, outcome.seconds = text, time.perf_counter() - start
    return outcome


def _output_file() -> int:
    """A file in memory (nothing on disk to leave behind) for the child's stdout/stderr."""
    try:
        return os.memfd_create("handgrad-output")
    except (AttributeError, OSError):
        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())


def _collect(sock: socket.socket, payload: bytes, limits: Limits,
             pids: dict[str, int]) -> tuple[dict, bytes | None]:
    """The keeper's report and the result; a report of only "held" when the wall time ran
    out ("timeout": True)."""
    report: dict[str, Any] = {}
    result = None
    try:
        kind, data = _receive(sock, time.monotonic() + 60)  # the keeper's set-up is ours
        if kind == b"E":
            raise GraderError(data.decode("utf-8", "replace"))
        pids.update(json.loads(data))
        sock.settimeout(60)  # the keeper reads the cases at once: a stall here is ours
        channel.send(sock, b"C", payload)
        deadline = time.monotonic() + limits.timeout
        while kind != b"D" or report.get("results"):
            kind, data = _receive(sock, deadline + (10 if kind == b"D" else 0))
            if kind == b"E":
                raise GraderError(data.decode("utf-8", "replace"))
            if kind == b"H":
                report["held"] = json.loads(data)
            elif kind == b"D":
                report.update(json.loads(data))
            elif kind == b"R":
                return report, data
    except TimeoutError:
        if "held" not in report:  # the child never reached the submission's code
            raise GraderError("the grading child did not start in time") from None
        return {"held": report["held"], "timeout": True, "started": True}, None
    except (channel.ChannelClosed, OSError, ValueError) as e:
        raise GraderError(f"the grading child's keeper ended without a report ({e})") from None
    return report, result


def _receive(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    return channel.receive(sock, max(JOB_LIMIT, RESULT_LIMIT))


def _kill(pids: dict[str, int]) -> None:
    """The keeper (its child, PID 1 of its namespace, dies with it) and the child's group."""
    with contextlib.suppress(ProcessLookupError, PermissionError, KeyError):
        os.killpg(pids["child"], signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError, KeyError):
        os.kill(pids["keeper"], signal.SIGKILL)


def _outcome(report: dict, result: bytes | None, limits: Limits) -> ChildOutcome:
    held = {k: report.get("held", {}).get(k) is True for k in HELD}
    if report.get("timeout"):
        outcome = ChildOutcome("timeout", error=f"the submission did not finish within "
                                                f"{limits.timeout:g} s (timeout)")
    elif not report.get("started"):
        why = report.get("error") or _ended(report)
        raise GraderError(f"the grading child failed before the submission's code started: "
                          f"{why}")
    else:
        outcome = _judged_end(report, result, limits)
    outcome.confined = held
    return outcome


def _judged_end(report: dict, result: bytes | None, limits: Limits) -> ChildOutcome:
    code, sig = report.get("code"), report.get("signal")
    exit_code = -sig if sig else code
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and
                                 report.get("cpu", 0) >= limits.cpu - 0.05):
        return ChildOutcome("cpu", error=f"the submission used up its CPU time limit of "
                                         f"{limits.cpu} s (cpu)",
                            exit_code=exit_code)
    data = None if result is None else _read_result(result)
    ran = data is not None and data["status"] == "ok"
    if report.get("results", 0) > 1 or (report.get("early") and ran):
        return ChildOutcome("forged", error="a result reached the grader that its runner did "
                                            "not send once, after the function returned",
                            exit_code=exit_code)
    if result is not None and code == 0:
        if data is None:
            return ChildOutcome("unreadable", error="the submission's results could not be "
                                                    "read", exit_code=code)
        return ChildOutcome(data["status"], error=data.get("error"), exit_code=code, data=data)
    if sig:
        return ChildOutcome("exited", error=f"the submission was killed by "
                                            f"{signal.Signals(sig).name} before returning "
                                            "gradients", exit_code=exit_code)
    return ChildOutcome("exited", error=f"the submission exited with code {code} before "
                                        "returning gradients", exit_code=exit_code)


def _ended(report: dict) -> str:
    if report.get("signal"):
        return f"killed by {signal.Signals(report['signal']).name}"
    return f"exited with code {report.get('code')}"


def _read_result(data: bytes) -> dict | None:
    """The result the runner sent, or None when it is not the expected form."""
    try:
        import io

        result = torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # anything the child sent that is not a readable result
        return None
    ok = (isinstance(result, dict) and result.get("status") in ("ok", "load", "no_function")
          and isinstance(result.get("results", []), list)
          and isinstance(result.get("error") or "", str))
    return result if ok else None


def _read_output(fd: int, kb: int) -> str:
    """The first and last kb/2 KB of the child's output, with a note of what was cut."""
    try:
        size = os.fstat(fd).st_size
        half = kb * 512
        if size <= 2 * half:
            return os.pread(fd, size, 0).decode("utf-8", "replace")
        head, tail = os.pread(fd, half, 0), os.pread(fd, half, size - half)
    except OSError:
        return ""
    cut = f"\n[... {size - 2 * half} bytes of output cut ...]\n"
    return head.decode("utf-8", "replace") + cut + tail.decode("utf-8", "replace")


def probe(limits: Limits | None = None) -> dict[str, bool]:
    """Which protections hold on this system, from a child that runs no submission:
    {"no_network", "read_only_files", "own_processes"} as in a result's `isolation`."""
    job = {"chunks": [("probe", "def backpropagation(*args):\n    pass\n")],
           "function": "backpropagation"}
    from handgrad.grade.sandbox.runner import encode

    outcome = run_sandboxed("handgrad.grade.sandbox.runner", job, encode([]),
                            limits or Limits(timeout=30))
    if outcome.status != "ok":
        raise GraderError(f"the sandbox's probe ended with {outcome.status}: {outcome.error}")
    return isolation(outcome.confined)


def isolation(confined: dict[str, bool]) -> dict[str, bool]:
    """A result's `isolation` keys from what the keeper reported."""
    return {"no_network": confined.get("network", False),
            "read_only_files": confined.get("filesystem", False),
            "own_processes": confined.get("processes", False)}
