"""CIFAR-10 read from its official "python version" files, in torchvision's folder layout.

    ROOT/cifar-10-batches-py/{data_batch_1 … data_batch_5, test_batch, batches.meta}

Each batch file is a dict with `data`, uint8 (N, 3072) (the red, green then blue 32×32 planes,
row-major) and `labels`, N official class indices. Files are checked for structure, not for
the official md5: a legitimate re-encoded subset is accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handgrad.data.memory import release_free_memory
from handgrad.data.safe_pickle import load_pickle, text, text_keys

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (3, 32, 32)
D = 3 * 32 * 32


def batches_dir(root: Path) -> Path:
    return Path(root) / FOLDER


def missing_message(root: Path) -> str:
    """Where we looked, the layout we expect, and how to download."""
    return (
        f"CIFAR-10 not found at {batches_dir(root)}: expected {FOLDER}/"
        f"{{data_batch_1..5, test_batch, batches.meta}} under --data-dir {root} "
        "(torchvision's layout); pass --download to fetch it"
    )


def read_meta(root: Path) -> list[str]:
    """The ten class names from batches.meta, checked."""
    path = _existing(root, META_FILE)
    meta = text_keys(load_pickle(path))
    names = meta.get("label_names") if isinstance(meta, dict) else None
    names = [text(n) for n in names] if isinstance(names, list) else names
    valid = isinstance(names, list) and len(names) == 10
    if not valid or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: 'label_names' must be a list of 10 class names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or not all(n.strip() for n in names):
        raise ValueError(f"{path}: 'label_names' must be 10 distinct, non-empty names, got "
                         f"{names!r}")
    return names


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 (N, 3072), labels int64 (N,)) from one batch file, structure checked."""
    batch = text_keys(load_pickle(path))
    if not isinstance(batch, dict) or not {"data", "labels"} <= batch.keys():
        keys = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: expected a dict with keys 'data' and 'labels', got {keys}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or \
            data.shape[1] != D:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, {D}), got {desc}")
    labels = _labels(batch["labels"], path)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    return data, labels


def _labels(raw: object, path: Path) -> np.ndarray:
    """int64 (N,) from a list of integers or an integer array, each in 0..9."""
    if isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind in "iu":
        bad = raw[(raw < 0) | (raw > 9)]
        bad = int(bad[0]) if bad.size else None
    elif isinstance(raw, list) and all(isinstance(v, (int, np.integer))
                                       and not isinstance(v, bool) for v in raw):
        bad = next((int(v) for v in raw if not 0 <= v <= 9), None)
    else:
        raise ValueError(f"{path}: 'labels' must be a list of integers")
    if bad is not None:
        raise ValueError(f"{path}: label {bad} out of range 0..9")
    return np.asarray(raw, dtype=np.int64)


def read_split(root: Path, train: bool, classes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The rows of official `classes` in each file of the training set (5 files) or the test
    set, as [(data, labels)], one pair a file. Only the kept rows stay in memory."""
    files = TRAIN_FILES if train else (TEST_FILE,)
    parts = []
    for name in files:
        data, labels = read_batch(_existing(root, name))
        keep = np.isin(labels, classes)
        parts.append((data, labels) if keep.all() else (data[keep], labels[keep]))
        data = labels = None
        release_free_memory()  # the unpickler's read buffer, and the file's other rows
    return parts


def _existing(root: Path, name: str) -> Path:
    folder = batches_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(missing_message(root))
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 file missing: {path}")
    return path
