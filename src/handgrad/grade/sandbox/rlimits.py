"""Process-level limits of the process that runs a submission: its streams and its rlimits."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from pathlib import Path


def redirect_output(fd: int) -> None:
    """stdin from /dev/null, stdout and stderr into the open file `fd`, and sys.stdin,
    sys.stdout and sys.stderr new streams on them (the grader's may be anything: a
    notebook's, pytest's capture)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(null)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115 (for the process's life)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def set_limits(cpu_s: int, memory_mb: int, file_limit: int) -> None:
    """rlimits: address space (what is mapped now plus `memory_mb`), CPU time (soft `cpu_s`
    seconds, SIGXCPU; hard one more, SIGKILL), file size (`file_limit` bytes), no core
    dumps."""
    mapped = _mapped_bytes()
    for name, soft, hard in (("RLIMIT_AS", mapped + memory_mb * 2**20, None),
                             ("RLIMIT_CPU", cpu_s, cpu_s + 1), ("RLIMIT_FSIZE", file_limit, None),
                             ("RLIMIT_CORE", 0, None)):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            resource.setrlimit(getattr(resource, name), (soft, soft if hard is None else hard))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead


def _mapped_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
