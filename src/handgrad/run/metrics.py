"""Loss, accuracy and confusion matrix of a model over a whole split, batch by batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from handgrad.data import Dataset, Split
from handgrad.engine.losses import Loss

Tensor = torch.Tensor


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    confusion: list[list[int]]  # confusion[true][predicted], k × k


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Class indices (N,) -> one-hot targets (N, C) in `dtype` (vectorised, no Python loop)."""
    return F.one_hot(y, num_classes).to(dtype)


def per_sample_sum(loss: Loss, value: Tensor, batch: int) -> Tensor:
    """The batch's loss summed over samples: sse is already a sum; the others are means."""
    return value if loss.name == "sse" else value * batch


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, split: Split, loss: Loss, dtype: torch.dtype,
             batch_size: int = 256) -> Evaluation:
    """Mean per-sample loss, accuracy and confusion matrix of `model` (an MLP or a
    Sequential) on `split`, on the model's device (batches are moved there when the data
    lives elsewhere), in evaluation mode (batch norm's running statistics, no dropout)."""
    was_training = model.training
    model.eval()
    try:
        return _evaluate(model, dataset, split, loss, dtype, batch_size)
    finally:
        model.train(was_training)


def _evaluate(model: nn.Module, dataset: Dataset, split: Split, loss: Loss, dtype: torch.dtype,
              batch_size: int) -> Evaluation:
    k, device = dataset.num_classes, next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    counts = torch.zeros(k * k, dtype=torch.int64, device=device)
    for x, y in dataset.batches(split, batch_size, dtype=dtype):
        x, y = x.to(device), y.to(device)
        y_pred = model(x)
        total += per_sample_sum(loss, loss.value(y_pred, one_hot(y, k, dtype)), len(y))
        counts += torch.bincount(y * k + y_pred.argmax(dim=1), minlength=k * k)
    confusion = counts.view(k, k)
    n = max(len(split), 1)
    return Evaluation(
        loss=total.item() / n,
        accuracy=confusion.diagonal().sum().item() / n,
        confusion=confusion.tolist(),
    )
