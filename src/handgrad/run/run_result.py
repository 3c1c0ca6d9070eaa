"""What one training run produced: its per-epoch metrics, status and test metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handgrad.engine.model import MLP
from handgrad.run.config import TrainConfig
from handgrad.run.health import LayerHealth
from handgrad.run.metrics import Evaluation


@dataclass
class EpochMetrics:
    """Train metrics are running means over the epoch's batches; val is a full pass after it.
    seconds: the epoch's training time, without the validation pass."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


CURVE_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def history_curves(history: list[EpochMetrics]) -> dict[str, list[float]]:
    """{train_loss, val_loss, train_accuracy, val_accuracy: [one value an epoch]} of a run's
    `history`: the curves a figure draws."""
    return {k: [getattr(m, k) for m in history] for k in CURVE_KEYS}


@dataclass
class RunResult:
    config: TrainConfig
    class_names: tuple[str, ...]
    status: str = "completed"  # or "diverged"
    message: str = ""
    history: list[EpochMetrics] = field(default_factory=list)
    test: Evaluation | None = None
    model: MLP | None = None
    layers: list[LayerHealth] = field(default_factory=list)  # per epoch and layer (health.py)

    def summary(self) -> dict[str, Any]:
        """Status and final metrics (the content of results.json, less the weights' hash)."""
        last = self.history[-1] if self.history else None
        test = self.test
        return {
            "status": self.status,
            "message": self.message,
            "epochs_completed": len(self.history),
            "train_loss": last.train_loss if last else None,
            "train_accuracy": last.train_accuracy if last else None,
            "val_loss": last.val_loss if last else None,
            "val_accuracy": last.val_accuracy if last else None,
            "test_loss": test.loss if test else None,
            "test_accuracy": test.accuracy if test else None,
            "confusion_matrix": test.confusion if test else None,
            "class_names": list(self.class_names),
        }
