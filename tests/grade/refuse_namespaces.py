"""Run `handgrad ARGS...` the way Docker's default seccomp profile would let it run: the
system calls that make namespaces and mounts (unshare, setns, mount, umount2, pivot_root)
fail with EPERM, for real, by a seccomp filter on this process and its children.

    python tests/grade/refuse_namespaces.py check-backprop FILE
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

REFUSED = {"x86_64": (272, 308, 165, 166, 155), "aarch64": (97, 268, 40, 39, 41)}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def refuse_namespaces() -> None:
    """Install the filter: each refused call returns EPERM, every other call is allowed."""
    numbers = REFUSED[platform.machine()]
    program = [(BPF_LD_W_ABS, 0, 0, 0)]  # the system call's number
    for i, number in enumerate(numbers):
        program.append((BPF_JEQ_K, len(numbers) - i, 0, number))
    program.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    program.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    raw = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(raw)
    prog = SockFprog(len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


if __name__ == "__main__":
    refuse_namespaces()
    from handgrad.cli.main import main

    sys.exit(main(sys.argv[1:]))
