"""Download CIFAR-10's official archive: streamed, md5-verified, extracted safely, moved atomically.

An interrupted or bad download never leaves a half-written dataset: everything happens in a
temporary folder beside the target, and only a verified, fully extracted
`cifar-10-batches-py/` is renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from handgrad.data.cifar10 import FOLDER, batches_dir

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
CHUNK = 1 << 20


class DownloadError(OSError):
    """The archive could not be fetched or verified."""


def download_cifar10(
    root: Path,
    url: str | None = None,
    md5: str = MD5,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Fetch, verify and install CIFAR-10 under `root`; returns ROOT/cifar-10-batches-py.

    Does nothing if the folder is already there. `url` defaults to $HANDGRAD_CIFAR10_URL (a
    mirror of the official archive) or the official address; the md5 is checked either way.
    Each attempt restarts the stream; after `retries` failed attempts a DownloadError says
    what went wrong.
    """
    url = url or os.environ.get("HANDGRAD_CIFAR10_URL") or URL
    root = Path(root)
    target = batches_dir(root)
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".cifar10-download-", dir=root))
    try:
        archive = work / "cifar-10-python.tar.gz"
        _fetch_with_retries(url, archive, timeout, retries, progress)
        actual = _md5(archive)
        if actual != md5:
            raise DownloadError(f"md5 mismatch for {url}: got {actual}, expected {md5}")
        _extract(archive, work / "extracted")
        os.replace(work / "extracted" / FOLDER, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _fetch_with_retries(url: str, dest: Path, timeout: float, retries: int, progress: bool) -> None:
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _fetch(url, dest, timeout, progress)
            return
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                TimeoutError, DownloadError) as e:
            last = e
            if attempt < retries:
                time.sleep(min(2.0 ** (attempt - 1), 8.0) * 0.5)
    raise DownloadError(f"download of {url} failed after {retries} attempts: {last}")


def _fetch(url: str, dest: Path, timeout: float, progress: bool) -> None:
    """Stream `url` into `dest`; DownloadError if fewer bytes arrive than announced."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc="cifar-10",
                  disable=not progress) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
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
