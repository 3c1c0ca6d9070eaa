"""The content of a run directory's files, checked when read back (rundir.py does the I/O).

Each check takes the parsed file and its path, and raises ValueError naming the file and the
first thing wrong, so that `evaluate` on a hand-edited or corrupt run says what is wrong in
one line instead of failing later with a traceback (or, worse, succeeding).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from handgrad.run.config import TrainConfig
from handgrad.run.health import LAYER_FIELDS, LayerHealth
from handgrad.run.result import EpochMetrics

METRIC_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
STATUSES = ("completed", "diverged")
NUMBERS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
           "test_accuracy")
MAX_METRICS_BYTES = 64 << 20
# Settings that do not change what a run computes: a rerun may differ in them.
NOT_SETTINGS = ("download", "classes")  # classes: compared as the resolved class names


def check_record(record: Any, path: Path) -> dict[str, Any]:
    """config.json: a dict with valid settings, sizes and class names that agree."""
    _expect(isinstance(record, dict), path, f"expected a JSON object, got {_kind(record)}")
    missing = [k for k in ("config", "sizes", "class_names") if k not in record]
    _expect(not missing, path, f"missing {', '.join(missing)}")
    try:
        config = TrainConfig.from_dict(record["config"])
        config.replace(device="cpu").validate()  # the device is checked where it is used
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{path}: bad settings: {e}") from None
    sizes, names = record["sizes"], record["class_names"]
    _expect(isinstance(sizes, list) and len(sizes) >= 2 and all(_is_int(s) and 1 <= s < 2**31
                                                                  for s in sizes),
            path, f"'sizes' must be a list of at least two positive widths, got {sizes!r}")
    _expect(sizes[1:-1] == list(config.hidden), path,
            f"'sizes' {sizes} disagree with hidden {list(config.hidden)}")
    _expect(_names(names), path, f"'class_names' must be at least two distinct names, got "
            f"{names!r}")
    _expect(len(names) == sizes[-1], path,
            f"{len(names)} class names for {sizes[-1]} outputs")
    return record


def config_sha256(record: dict[str, Any]) -> str:
    """sha256 of config.json's settings, sizes and class names as canonical JSON: results.json
    records it, so that a setting edited after training (loss, standardize, dtype, split…)
    is refused instead of silently changing what `evaluate` computes."""
    recorded = {k: record.get(k) for k in ("config", "sizes", "class_names")}
    text = json.dumps(recorded, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_config_sha(record: dict[str, Any], results: dict[str, Any], path: Path) -> None:
    """ValueError unless results.json (at `path`) records the hash of this config.json."""
    recorded = results.get("config_sha256")
    _expect(recorded is not None, path, "records no config_sha256 (written by an older "
            "handgrad?): its settings cannot be verified; train again")
    _expect(recorded == config_sha256(record), path, "config.json was changed after the run "
            "(its settings no longer match the config_sha256 recorded here); restore it or "
            "train again")


def check_results(results: Any, path: Path) -> dict[str, Any]:
    """results.json: status, metrics, confusion matrix and weights' hash, each checked."""
    _expect(isinstance(results, dict), path, f"expected a JSON object, got {_kind(results)}")
    status = results.get("status")
    _expect(status in STATUSES, path, f"status must be one of {', '.join(STATUSES)}, got "
            f"{status!r}")
    r = {"message": "", "confusion_matrix": None, "weights_sha256": None,
         **{k: None for k in NUMBERS}, **results}
    _expect(isinstance(r["message"], str), path, "'message' must be text")
    epochs = r.get("epochs_completed")
    _expect(_is_int(epochs) and epochs >= 0, path,
            f"'epochs_completed' must be a count, got {epochs!r}")
    for key in NUMBERS:
        v = r[key]
        ok = v is None or (_is_number(v) and v >= 0 and ("accuracy" not in key or v <= 1))
        _expect(ok, path, f"{key!r} must be a finite number >= 0 (<= 1 for an accuracy) or "
                f"null, got {v!r}")
    if status == "completed":
        gone = [k for k in ("train_loss", "val_loss", "val_accuracy") if r[k] is None]
        _expect(not gone and epochs >= 1, path, f"a completed run without {', '.join(gone)}")
    names = r.get("class_names")
    _expect(_names(names), path, f"'class_names' must be at least two names, got {names!r}")
    cm, k = r["confusion_matrix"], len(names)
    _expect(cm is None or (isinstance(cm, list) and len(cm) == k and all(
        isinstance(row, list) and len(row) == k and all(_is_int(c) and c >= 0 for c in row)
        for row in cm)), path, f"'confusion_matrix' must be {k}x{k} counts")
    for key in ("weights_sha256", "config_sha256"):
        sha = r.get(key)
        _expect(sha is None or (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha)),
                path, f"{key!r} must be 64 hex digits, got {sha!r}")
    return r


def settings_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'name: A there, B now' for each setting (as JSON) that differs."""
    current = json.loads(json.dumps(current))
    keys = sorted((set(stored) | set(current)) - set(NOT_SETTINGS))
    return [f"{k}: {stored.get(k)!r} there, {current.get(k)!r} now" for k in keys
            if stored.get(k) != current.get(k)]


def metrics_row(m: EpochMetrics) -> dict[str, Any]:
    return asdict(m)


def read_metrics(path: Path) -> list[EpochMetrics]:
    """metrics.csv: one row per epoch, epochs 1, 2, … (files without `seconds` accepted)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise ValueError(f"{path}: larger than {MAX_METRICS_BYTES >> 20} MiB")
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
        missing = [f for f in METRIC_FIELDS[:5] if f not in (reader.fieldnames or [])]
        _expect(not missing, path, f"missing columns {', '.join(missing)}")
        return [_epoch(row, i, path) for i, row in enumerate(reader, 1)]
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a metrics file ({e})") from None


def _epoch(row: dict[str, Any], i: int, path: Path) -> EpochMetrics:
    try:
        epoch = int(row["epoch"])
        values = [float(row[k]) for k in METRIC_FIELDS[1:5]]
        seconds = float(row.get("seconds") or "nan")
    except (TypeError, ValueError):
        raise ValueError(f"{path}: row {i} is not numbers: {row}") from None
    _expect(epoch == i, path, f"row {i} is epoch {epoch}")
    return EpochMetrics(epoch, *values, seconds)


def layer_row(h: LayerHealth) -> dict[str, Any]:
    row = asdict(h)
    row["dead_fraction"] = "" if h.dead_fraction is None else h.dead_fraction
    return row


def read_layers(path: Path) -> list[LayerHealth]:
    """layers.csv: per epoch and layer, the gradient health (`LAYER_FIELDS`)."""
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise ValueError(f"{path}: larger than {MAX_METRICS_BYTES >> 20} MiB")
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
        missing = [f for f in LAYER_FIELDS if f not in (reader.fieldnames or [])]
        _expect(not missing, path, f"missing columns {', '.join(missing)}")
        return [_layer(row, i, path) for i, row in enumerate(reader, 1)]
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a layers file ({e})") from None


def _layer(row: dict[str, Any], i: int, path: Path) -> LayerHealth:
    try:
        numbers = [float(row[k]) for k in LAYER_FIELDS[2:5]]
        dead = float(row["dead_fraction"]) if row["dead_fraction"] else None
        return LayerHealth(int(row["epoch"]), str(row["layer"]), *numbers, dead)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: row {i} is not numbers: {row}") from None


def _expect(ok: Any, path: Path, message: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _names(v: Any) -> bool:
    return (isinstance(v, list) and len(v) >= 2 and all(isinstance(n, str) for n in v)
            and len(set(v)) == len(v))


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
