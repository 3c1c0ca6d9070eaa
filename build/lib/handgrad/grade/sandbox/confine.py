"""Linux namespaces for a grading child: no network, and a read-only file system but for
its working directory.

`confine(workdir)` runs in the child before any of the submission's code:

1. a new network namespace (nothing but a down loopback) and a new mount namespace, with a
   new user namespace too when not root;
2. in it, an empty tmpfs over each folder of `hide` (/tmp, /var/tmp, /dev/shm and the
   folder of the grader's fork-server socket: a submission that reached that socket would
   have the fork server run its code outside every namespace), `workdir` bind-mounted back
   in place, and every other mount remounted read-only (/proc and /sys excepted: writing
   there needs privileges the child drops in 3);
3. a second user and mount namespace on top, which locks those read-only flags: the
   submission, even as "root" inside it, cannot remount them writable, and holds no
   capability outside it.

`new_pid_namespace()` and `become_pid_one()` then fork the process that runs the submission
as PID 1 of a new PID namespace: when it ends, or when the process above it is killed, every
process it started dies with it, whatever session it put itself in. It gets a /proc of its
own namespace, locked like the rest (it cannot unmount it to see the host's).

Each step reports whether it held; where the system refuses one (no user namespaces, a
seccomp profile), the child carries on with what it has and says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG = 1
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
         "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
KEEP_WRITABLE = ("/proc", "/sys")


def confine(workdir: str, hide: tuple[str, ...] = ()) -> dict[str, bool]:
    """{"network": …, "filesystem": …}: whether the child lost the network and whether
    everything but `workdir` became read-only for it, the folders `hide` empty."""
    if not Path("/proc/self/ns/net").exists():
        return {"network": False, "filesystem": False}
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    first = CLONE_NEWNET | CLONE_NEWNS | (0 if uid == 0 else CLONE_NEWUSER)
    if libc.unshare(first) != 0:
        return {"network": libc.unshare(CLONE_NEWNET | _user(uid)) == 0 and _map(uid, gid),
                "filesystem": False}
    if uid != 0:
        _map(uid, gid)
    read_only = _hide(libc, workdir, hide) and _read_only_except(libc, workdir)
    locked = libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 and _map(uid, gid)
    return {"network": True, "filesystem": read_only and locked}


def _user(uid: int) -> int:
    return 0 if uid == 0 else CLONE_NEWUSER


def _map(uid: int, gid: int) -> bool:
    """Map this process's uid and gid to themselves in its new user namespace."""
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def _hide(libc: ctypes.CDLL, workdir: str, hide: tuple[str, ...]) -> bool:
    """An empty tmpfs over each existing folder of `hide`, then `workdir` bind-mounted on
    itself (from a descriptor opened before, as a hidden folder may hold it)."""
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    keep = os.open(workdir, os.O_PATH | os.O_DIRECTORY)
    try:
        hidden: list[str] = []
        for folder in sorted({os.path.realpath(f) for f in hide if os.path.isdir(f)}):
            if folder == "/" or any(folder.startswith(h + "/") for h in hidden):
                continue  # already under an empty tmpfs
            if libc.mount(b"tmpfs", folder.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                          b"size=1m,mode=755") != 0:
                return False
            hidden.append(folder)
        os.makedirs(workdir, exist_ok=True)
        return libc.mount(f"/proc/self/fd/{keep}".encode(), workdir.encode(), None,
                          MS_BIND | MS_REC, None) == 0
    finally:
        os.close(keep)


def _read_only_except(libc: ctypes.CDLL, workdir: str) -> bool:
    """Every mount read-only but `workdir` (and /proc, /sys); True when all held."""
    ok = True
    for target, options in _mounts():
        inside = target == workdir or target.startswith(workdir.rstrip("/") + "/")
        if inside or target.startswith(KEEP_WRITABLE):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(bit for name, bit in FLAGS.items() if name in options)
        if libc.mount(None, target.encode(), None, flags, None) != 0:
            ok = False
    return ok


def _mounts() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) from /proc/self/mountinfo, parents first."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        target = fields[4].encode().decode("unicode_escape")
        out.append((target, set(fields[5].split(","))))
    return out


def new_pid_namespace() -> bool:
    """Put this process's next child in a new PID namespace; False where refused."""
    return ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWPID) == 0


def become_pid_one() -> bool:
    """Fork; the child returns as PID 1 of the namespace `new_pid_namespace` made, with its
    own /proc, locked in place (True when that held). This process waits for it, then ends
    with the same exit status."""
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            return False
        uid, gid = os.geteuid(), os.getegid()
        return libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 and _map(uid, gid)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))
