from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from handgrad.data import Dataset, load_dataset

settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
CIFAR_ROOT = REPO.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """The real two-class CIFAR-10 subset beside the clone. Without it a test skips with a
    reason, as on a user's own clone; where `CI` is set it fails instead, so CI always runs
    the tests on the real images."""
    batches = CIFAR_ROOT / "cifar-10-batches-py"
    if not batches.is_dir():
        message = f"real CIFAR-10 files missing at {batches}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: the real images are required)")
        pytest.skip(message)
    return CIFAR_ROOT


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """The embedded digits, 3 vs 8, split with seed 0 (read-only: tests must not change it)."""
    return load_dataset("digits", seed=0)
