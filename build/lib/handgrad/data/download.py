"""Download CIFAR-10's official archive: streamed, md5-verified, extracted safely, moved atomically.

An interrupted or bad download never leaves a half-written dataset: everything happens in a
temporary folder `.cifar10-download-<pid>-*` beside the target, and only a verified, fully
extracted `cifar-10-batches-py/` is renamed into place. The folder is removed on any error,
on SIGTERM, and (when its process was killed outright) by the next download.

Only transient failures are retried (connection errors, timeouts, HTTP 408, 429 and 5xx);
the whole download, retries included, must end within a deadline
($HANDGRAD_DOWNLOAD_DEADLINE seconds, default 3600).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from handgrad.data.cifar10 import FOLDER, batches_dir

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
CHUNK = 1 << 20
DEADLINE = 3600.0  # seconds for the whole download, unless $HANDGRAD_DOWNLOAD_DEADLINE says
WORK_PREFIX = ".cifar10-download-"
MAX_BYTES = 512 << 20  # the official archive has 170,498,071: a larger one is not it


class DownloadError(OSError):
    """The archive could not be fetched or verified."""


def download_cifar10(
    root: Path,
    url: str | None = None,
    md5: str = MD5,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool | None = None,
    deadline: float | None = None,
) -> Path:
    """Fetch, verify and install CIFAR-10 under `root`; returns ROOT/cifar-10-batches-py.

    Does nothing if the folder is already there. `url` defaults to $HANDGRAD_CIFAR10_URL (a
    mirror of the official archive) or the official address; the md5 is checked either way.
    Each attempt restarts the stream; after `retries` failed attempts, a non-transient
    failure, or `deadline` seconds in all, a DownloadError says what went wrong.
    progress: a bar on stderr (None: only when stderr is a terminal).
    """
    url = url or os.environ.get("HANDGRAD_CIFAR10_URL") or URL
    deadline = _deadline() if deadline is None else deadline
    progress = sys.stderr.isatty() if progress is None else progress
    root = Path(root)
    target = batches_dir(root)
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_orphans(root)
    with _sigterm_as_exit():
        work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=root))
        try:
            archive = work / "cifar-10-python.tar.gz"
            _fetch_with_retries(url, archive, timeout, retries, progress, deadline)
            actual = _md5(archive)
            if actual != md5:
                raise DownloadError(f"md5 mismatch for {url}: got {actual}, expected {md5}")
            _extract(archive, work / "extracted")
            os.replace(work / "extracted" / FOLDER, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _deadline() -> float:
    text = os.environ.get("HANDGRAD_DOWNLOAD_DEADLINE")
    if text is None:
        return DEADLINE
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"HANDGRAD_DOWNLOAD_DEADLINE must be a number of seconds > 0, got "
                         f"{text!r}")
    return value


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Inside: SIGTERM raises SystemExit(143), so that `finally` blocks clean up (only
    where nobody else handles SIGTERM, and only in the main thread)."""
    def handler(signum, frame):
        raise SystemExit(128 + signal.SIGTERM)

    installed, previous = False, signal.SIG_DFL
    with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, handler)
            installed = True
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _remove_orphans(root: Path) -> None:
    """Remove the work folders of downloads whose process no longer exists (SIGKILL)."""
    for work in root.glob(f"{WORK_PREFIX}*"):
        pid = work.name[len(WORK_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(work, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours, or a platform without signal 0
        return True
    return True


def _transient(e: Exception) -> bool:
    if isinstance(e, _TooLarge):
        return False
    if isinstance(e, urllib.error.HTTPError):
        return e.code in (408, 429) or e.code >= 500
    return True


def _fetch_with_retries(url: str, dest: Path, timeout: float, retries: int, progress: bool,
                        deadline: float) -> None:
    end = time.monotonic() + deadline
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _fetch(url, dest, timeout, progress, end)
            return
        except _DeadlinePassed:
            raise DownloadError(f"download of {url} did not finish within {deadline:g} s (set "
                                "HANDGRAD_DOWNLOAD_DEADLINE to allow longer, or use a faster "
                                "mirror)") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                TimeoutError, DownloadError) as e:
            if not _transient(e):
                raise DownloadError(f"download of {url} failed: {e}") from None
            last = e
            if attempt < retries:
                time.sleep(min(2.0 ** (attempt - 1), 8.0, max(end - time.monotonic(), 0)) * 0.5)
    raise DownloadError(f"download of {url} failed after {retries} attempts: {last}")


class _DeadlinePassed(DownloadError):
    pass


class _TooLarge(DownloadError):
    pass


def _content_length(text: str | None) -> int | None:
    try:
        total = int(text or 0) or None
    except ValueError:
        return None
    if total is not None and not 0 < total <= MAX_BYTES:
        raise _TooLarge(f"the server announces {total} bytes: not the CIFAR-10 archive")
    return total


def _fetch(url: str, dest: Path, timeout: float, progress: bool, end: float) -> None:
    """Stream `url` into `dest`; DownloadError if fewer bytes arrive than announced, or if
    the deadline `end` (time.monotonic) passes."""
    def left() -> float:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed("deadline passed")
        return remaining

    with urllib.request.urlopen(url, timeout=min(timeout, left())) as response, \
            open(dest, "wb") as out:
        total = _content_length(response.headers.get("Content-Length"))
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc="cifar-10",
                  disable=not progress) as bar:
            while left() and (chunk := response.read1(CHUNK)):  # read1: what has arrived
                out.write(chunk)
                received += len(chunk)
                if received > MAX_BYTES:
                    raise _TooLarge(f"more than {MAX_BYTES} bytes: not the CIFAR-10 archive")
                bar.update(len(chunk))
    if total is not None and received != total:
        raise DownloadError(f"connection closed after {received} of {total} bytes")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: Path, dest: Path) -> None:
    """Extract with tarfile's "data" filter: no absolute paths, no `..`, no links out."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"{archive.name}: cannot extract ({e})") from None
    if not (dest / FOLDER).is_dir():
        raise DownloadError(f"{archive.name}: archive has no {FOLDER}/ folder")
