"""argparse types: each turns one command-line word into a value or refuses it in one line.

They check the form of a value (a number, a list of widths); the ranges that a training run
needs are checked once, by `TrainConfig.validate()`, for the CLI and the Python API alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from handgrad.run.config import MAX_SEED, check_seed


def classes(text: str) -> list[str]:
    """'3,8' or '3' -> class names or indices (several words are joined by argparse)."""
    return [c for c in text.split(",") if c]


def widths(text: str) -> str:
    """'512,128,32' checked and normalised."""
    try:
        values = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of widths like 512,128,32") from None
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} holds no width; give hidden sizes like "
                                         "512,128,32 (a network without hidden layers: --hidden "
                                         "with no value)")
    if any(w < 1 for w in values):
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be >= 1")
    return ",".join(map(str, values))


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def seed(text: str) -> int:
    """An integer that every generator handgrad seeds accepts (see `check_seed`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    try:
        return check_seed(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, {MAX_SEED}], got {value}") from None


def path(text: str) -> Path:
    """A file or folder path; an empty one is refused (Path('') would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a folder")
    return Path(text)
