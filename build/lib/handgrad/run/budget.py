"""Memory needed by a network, estimated before anything is allocated, so that absurd widths
are a one-line refusal instead of an allocation error or the kernel's OOM killer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2}  # parameter-sized buffers (sgd: momentum)


def parameter_count(sizes: Sequence[int]) -> int:
    """Σ_l (H_{l-1} + 1) · H_l: the weights and biases of `sizes[0] -> … -> sizes[L]`."""
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))


def network_bytes(sizes: Sequence[int], dtype: torch.dtype, batch: int, copies: int) -> int:
    """`copies` parameter-sized tensors plus, per sample of a batch, z, a and their two
    gradients for every layer."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return (copies * parameter_count(sizes) + 4 * batch * sum(sizes)) * itemsize


def training_bytes(sizes: Sequence[int], dtype: torch.dtype, optimizer: str, batch: int) -> int:
    """Parameters, gradients, one scratch copy and the optimizer's state."""
    return network_bytes(sizes, dtype, batch, 3 + OPTIMIZER_STATE.get(optimizer, 2))


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device` (RAM within this process's cgroup for the CPU); None if
    unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    found = [_meminfo_available(), _cgroup_available()]
    known = [b for b in found if b is not None]
    return min(known) if known else None


def check_fits(needed: int, device: torch.device, what: str) -> None:
    """ValueError when `needed` bytes exceed what `device` has free."""
    free = available_bytes(torch.device(device))
    if free is not None and needed > free:
        raise ValueError(f"{what}: needs about {_size(needed)} of memory, {_size(free)} is "
                         f"free on {torch.device(device).type}; use smaller widths")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"
