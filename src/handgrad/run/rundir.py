"""Run directories: every file written atomically (temporary file, then rename).

    DIR/config.json    everything needed to rerun (command, settings, versions)
    DIR/metrics.csv    one row per epoch
    DIR/results.json   status and final metrics
    DIR/weights.safetensors   the final weights (no pickle)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CONFIG, METRICS, RESULTS = "config.json", "metrics.csv", "results.json"
WEIGHTS = "weights.safetensors"
METRIC_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def save_weights(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """safetensors file with string metadata, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
                   for k, v in state.items()}  # contiguous and unshared, as safetensors needs
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (which cannot execute code)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no weights file")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a valid safetensors file ({e})") from None


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


def default_run_dir(name: str, base: str | Path = "runs") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(base) / f"{stamp}-{name}"
