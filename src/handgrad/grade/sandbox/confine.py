"""Linux namespaces for a grading child: no network, a file system that holds only what the
child needs (an allow-list), and processes that die with it.

`enter(allowed, submission, network)` runs in the keeper (our code only, before any of the
submission's): a new mount and network namespace (and user namespace when not root), then a
new root on an empty tmpfs, into which are bind-mounted, read-only,

- each path of `allowed` at its own place (the Python installation and the packages the
  child imports, wherever they are; the system's libraries), symbolic links as links;
- the submission (its file, or its folder) at `SUBMISSION`;
- /dev/null, /dev/zero, /dev/random and /dev/urandom;

with an empty writable tmpfs at `WORK` (also /tmp, HOME and TMPDIR) and the host's root
kept at /old until `finish()`. Nothing else is there: not the class folder, not the other
submissions, not the grader's output, not the user's home.

`finish(proc)` runs in the process that runs the submission, PID 1 of its own PID namespace
(`new_pid_namespace`): it mounts that namespace's /proc, detaches /old, makes the root
read-only and locks every mount in a second user and mount namespace (even as "root" inside
it, the submission cannot unmount or remount them).

Each step reports whether it held; where the system refuses one (no user namespaces, a
seccomp profile such as Docker's default), the caller carries on without it and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG = 1
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
         "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
WORK, SUBMISSION = "/sandbox/work", "/sandbox/submission"
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
WORK_SIZE = "64m"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent ends (now, if it already has)."""
    import signal

    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def enter(allowed: list[str], submission: str | None, network: bool = False) -> dict[str, bool]:
    """{"network": …, "filesystem": …}: whether this process lost the network (unless
    `network`) and now sees the allow-list root described above."""
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | (0 if network else CLONE_NEWNET) | (0 if uid == 0 else CLONE_NEWUSER)
    if not Path("/proc/self/ns/mnt").exists() or libc.unshare(flags) != 0:
        return {"network": False, "filesystem": False}
    if uid != 0 and not _map(uid, gid):
        return {"network": not network, "filesystem": False}
    try:
        _new_root(libc, allowed, submission)
    except OSError:
        return {"network": not network, "filesystem": False}
    return {"network": not network, "filesystem": True}


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None,
           flags: int, data: str | None = None) -> None:
    _check(libc.mount(_bytes(source), target.encode(), _bytes(fstype), flags, _bytes(data)),
           f"mount {target}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _new_root(libc: ctypes.CDLL, allowed: list[str], submission: str | None) -> None:
    """pivot_root into an empty tmpfs (the host's root at /old), then bind what is allowed."""
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"no pivot_root number known for {platform.machine()}")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
    _mount(libc, "tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    os.chdir(base)
    os.mkdir("old")
    _check(libc.syscall(number, b".", b"old"), "pivot_root")
    os.chdir("/")
    bound: list[str] = []
    for path in sorted(set(allowed)):
        covered = any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound)
        if not covered and _bind(libc, "/old" + path, path):
            bound.append(path)
    if submission is not None:
        _bind(libc, "/old" + submission, SUBMISSION)
    for device in DEVICES:
        _bind(libc, "/old" + device, device)
    os.makedirs(WORK)
    _mount(libc, "tmpfs", WORK, "tmpfs", MS_NOSUID | MS_NODEV, f"size={WORK_SIZE},mode=700")
    if not os.path.lexists("/tmp"):
        os.symlink(WORK, "/tmp")
    os.makedirs("/proc", exist_ok=True)
    _read_only(libc)


def _bind(libc: ctypes.CDLL, source: str, target: str) -> bool:
    """`source` (a path under /old) at `target`: a link as the same link, a folder or file
    bind-mounted (read-only later, by `_read_only`). False when `source` does not exist."""
    if os.path.islink(source):
        if not os.path.lexists(target):
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            os.symlink(os.readlink(source), target)
        return False  # its target is bound where the allow-list names it
    if not os.path.exists(source):
        return False
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass
    _mount(libc, source, target, None, MS_BIND | MS_REC)
    return True


def _read_only(libc: ctypes.CDLL) -> None:
    """Every bind-mount of the new root read-only, keeping each one's other flags (in a user
    namespace they are locked: dropping one would be refused)."""
    for target, options in _mounts("/old/proc/self/mountinfo"):
        if target in ("/", WORK) or target == "/old" or target.startswith("/old/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(bit for name, bit in FLAGS.items() if name in options)
        _mount(libc, None, target, None, flags)


def _mounts(mountinfo: str) -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) from a mountinfo file, parents first."""
    out = []
    for line in Path(mountinfo).read_text().splitlines():
        fields = line.split()
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # \040: " "
        out.append((target, set(fields[5].split(","))))
    return out


def _map(uid: int, gid: int) -> bool:
    """Map this process's uid and gid to themselves in its new user namespace."""
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def new_pid_namespace() -> bool:
    """Put this process's next child in a new PID namespace; False where refused."""
    return _libc().unshare(CLONE_NEWPID) == 0


def finish(own_pids: bool) -> bool:
    """In the process that runs the submission, after `enter` held: its /proc (when it is
    PID 1 of its own namespace), the host's root detached, the root read-only, and every
    mount locked. True when all of it held."""
    libc = _libc()
    ok = True
    if own_pids:
        ok = libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0
    ok = libc.umount2(b"/old", MNT_DETACH) == 0 and ok
    with contextlib.suppress(OSError):
        os.rmdir("/old")
    ok = libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                    None) == 0 and ok
    uid, gid = os.geteuid(), os.getegid()
    return libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 and _map(uid, gid) and ok
