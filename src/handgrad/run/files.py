"""Files written atomically (temporary file beside the target, fsync, rename) and read back
strictly: a reader never sees half a file, and a corrupt one is a ValueError naming it."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from handgrad.engine.errors import SettingError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

MAX_JSON_BYTES = 64 << 20  # run and sweep records are kilobytes; refuse to read a huge one


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file `.NAME.*` beside `path`, fsync, then rename over
    `path`. The temporary is removed on any error (only SIGKILL can leave one behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for others to read
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def finite_or_none(obj: Any) -> Any:
    """obj with every NaN/inf float replaced by None, so that the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(finite_or_none(obj), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # beyond int64: no count or setting of ours is that large
        raise ValueError(f"number {text[:30]}… is too large")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is too large")
    return value


def read_json(path: Path) -> Any:
    """The JSON value in `path`; FileNotFoundError or ValueError naming the file."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or device would block or never end
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"{path}: is {kind}, not a JSON file")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a JSON file") from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB, not a handgrad record")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants, parse_int=_int,
                          parse_float=_float)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path}: not valid JSON ({' '.join(str(e).split())})") from None


def write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("handgrad", "torch", "numpy", "optuna", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


@contextmanager
def lock_folder(path: str | Path) -> Iterator[None]:
    """Create `path` and hold an exclusive lock on the folder itself (flock on its descriptor:
    no lock file is left in it), or ValueError when another handgrad command holds it, so that
    two commands never write one folder at once. Without fcntl (Windows): no lock."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingError(f"{path}: another handgrad command is writing this folder "
                               "right now; wait for it to finish or use another out",
                               "out") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def check_out(out_dir: str | Path | None) -> Path | None:
    """`out_dir` as a Path; ValueError for an empty one ('' would mean the current folder)."""
    if out_dir is None:
        return None
    if not isinstance(out_dir, (str, Path)) or not str(out_dir).strip():
        raise ValueError(f"out must be a folder path, got {out_dir!r}")
    return Path(out_dir)
