from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
CIFAR_ROOT = REPO.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """The real two-class CIFAR-10 subset; fails (never skips) when it is missing."""
    batches = CIFAR_ROOT / "cifar-10-batches-py"
    assert batches.is_dir(), f"real CIFAR-10 files missing at {batches}"
    return CIFAR_ROOT
