"""Process-level limits of a grading child: its streams, its rlimits, and no pipe to
multiprocessing's resource tracker (a process outside the child)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from pathlib import Path


def close_resource_tracker() -> None:
    """Close the pipe to multiprocessing's resource tracker (a process outside the child)."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    if getattr(tracker, "_fd", None) is not None:
        with contextlib.suppress(OSError):
            os.close(tracker._fd)
        tracker._fd = None


def redirect_output(path: str) -> None:
    """stdin from /dev/null, stdout and stderr into the file `path`."""
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)


def set_limits(timeout: float, memory_mb: int, file_limit: int) -> None:
    """rlimits: address space (what is mapped now plus `memory_mb`), CPU time (`timeout`
    plus one second), file size (`file_limit` bytes), no core dumps."""
    mapped = _mapped_bytes()
    cpu = int(timeout) + 1
    for name, soft, hard in (("RLIMIT_AS", mapped + memory_mb * 2**20, None),
                             ("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_FSIZE", file_limit, None),
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
