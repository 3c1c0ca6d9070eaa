"""handgrad: backpropagation written by hand, proven against autograd.

    >>> import torch, handgrad
    >>> model = handgrad.MLP([3072, 512, 128, 32, 2])
    >>> y_pred = model(torch.rand(64, 3072))
    >>> handgrad.backpropagation(model, torch.randn(64, 2), y_pred)   # fills model.dL_dw

Whole runs (`train`, `compare`, `sweep`, `reproduce`, `load_run`, in `handgrad.api`), the
autograder (`grade_submissions`; the package `handgrad.grade` holds its parts) and the
configs they take (`TrainConfig`, `SweepSpec`) are imported on first use, so that
`import handgrad` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from handgrad.check.gradcheck import gradcheck
from handgrad.engine import optim
from handgrad.engine.activations import ACTIVATIONS, get_activation
from handgrad.engine.backprop import backpropagation
from handgrad.engine.losses import LOSSES, get_loss
from handgrad.engine.model import MLP
from handgrad.grade.grader import check_backprop

__version__ = "0.1.0"

_LAZY = {
    "train": "handgrad.api",
    "compare": "handgrad.api",
    "sweep": "handgrad.api",
    "reproduce": "handgrad.api",
    "load_run": "handgrad.api",
    "grade_submissions": "handgrad.api",
    "diagram": "handgrad.report.diagram",
    "TrainConfig": "handgrad.run.config",
    "SweepSpec": "handgrad.run.sweep_spec",
}

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "SweepSpec",
    "TrainConfig",
    "backpropagation",
    "check_backprop",
    "compare",
    "diagram",
    "get_activation",
    "get_loss",
    "grade_submissions",
    "gradcheck",
    "load_run",
    "optim",
    "reproduce",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    """The entry points of `_LAZY`, imported when first used (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'handgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
