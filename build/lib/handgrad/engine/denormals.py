"""Flush-to-zero for subnormal floats, on every thread that does torch's CPU arithmetic.

A subnormal float (below 1.2e-38 in float32, 2.2e-308 in float64) sends many x86 CPUs
down a slow microcode path, for every vector that holds one. Training makes them: the
momentum of a unit that no longer gets a gradient decays by μ every step until it is
subnormal; after 20 CIFAR-10 epochs (lr 0.01, momentum 0.9, batch 64) 4 % of the momentum
entries are (benchmarks/NOTES.md has the counts, and the times: this project's AMD EPYC
computes on them at full speed, so the mode matters on CPUs that do not).

The cure is the CPU's flush-to-zero and denormals-are-zero modes (MXCSR FTZ/DAZ), which
`torch.set_flush_denormal` sets. But MXCSR belongs to a thread: set on the main thread it
leaves torch's intra-op OpenMP workers as they were, and they do half of every large
operation. `flush_denormals` therefore runs `torch.set_flush_denormal` inside an OpenMP
parallel region of torch's own OpenMP runtime, once on each of its threads; threads
created later copy the mode of the thread that creates them. Results change only where a
value would have been below the smallest normal float (about 1e-38 in float32).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

_OPENMP_NAMES = ("libgomp", "libiomp5")  # both export GOMP_parallel
_Callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_flushing = False  # the mode handgrad last set on every thread (a process starts without)


def flush_denormals(enabled: bool = True) -> bool:
    """Set flush-to-zero (`enabled`) or IEEE subnormals on every torch CPU thread.

    Returns True when the mode reached every intra-op thread, False where it could not
    (a CPU without the modes, or a torch whose threads are not OpenMP's; then only the
    calling thread is set, where the CPU supports it).
    """
    global _flushing
    supported = torch.set_flush_denormal(enabled)
    threads = torch.get_num_threads()
    if not supported:
        return False
    _flushing = enabled
    if threads == 1:
        return True
    gomp_parallel = _gomp_parallel()
    if gomp_parallel is None:
        return False
    callback = _Callback(lambda _: torch.set_flush_denormal(enabled))
    gomp_parallel(callback, None, threads, 0)
    return True


@contextmanager
def denormals_mode(flush: bool) -> Iterator[bool]:
    """Flush subnormals (or keep them) on every thread inside the block; afterwards restore
    the mode handgrad had set before (keeping them, unless it was asked otherwise). Yields
    `flush_denormals`' answer."""
    before = _flushing
    try:
        yield flush_denormals(flush)
    finally:
        if before != flush:
            flush_denormals(before)


def count_subnormals(t: torch.Tensor) -> int:
    """How many entries of a floating-point tensor are subnormal (nonzero, below tiny)."""
    return int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())


def all_threads_flush(n: int = 1 << 20) -> bool:
    """True when one parallel operation over `n` subnormal float32 values flushes every
    one of them to zero, i.e. when every thread that shares the work flushes."""
    bits = torch.full((n,), 1 << 20, dtype=torch.int32)  # a subnormal float32's bits
    return bool((bits.view(torch.float32) * 1.0).view(torch.int32).eq(0).all())


@functools.cache
def _gomp_parallel():
    """`GOMP_parallel(fn, data, num_threads, flags)` of the OpenMP runtime torch loaded,
    or None (not Linux, or torch's threads are not OpenMP's)."""
    maps = Path("/proc/self/maps")
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info() or not maps.exists():
        return None
    libs = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                   if any(name in line.rsplit("/", 1)[-1] for name in _OPENMP_NAMES)})
    for path in libs:
        try:
            fn = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        fn.argtypes = [_Callback, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        fn.restype = None
        return fn
    return None
