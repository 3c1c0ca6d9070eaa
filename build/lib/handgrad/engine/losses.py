"""Losses over a network output `y_pred` (N, C), each with its gradient dL/dy_pred (N, C).

| name              | value L                                   | dL/dy_pred                   |
|-------------------|-------------------------------------------|------------------------------|
| `sse`             | Σ_n Σ_c (y - t)²                          | 2 (y - t)                    |
| `mse`             | (1 / NC) Σ_n Σ_c (y - t)²  (nn.MSELoss)   | 2 (y - t) / NC               |
| `cross_entropy`   | -(1/N) Σ_n Σ_c t_nc log softmax(y_n)_c    | (softmax(y) Σ_c t - t) / N   |
| `bce_with_logits` | (1 / NC) Σ BCE(σ(y), t)                   | (σ(y) - t) / NC              |

`cross_entropy` takes class indices `(N,)` (int64) or class probabilities / one-hot `(N, C)`,
as `nn.CrossEntropyLoss` does, and is computed with log-sum-exp so large logits never
overflow. One 1-D sample `(C,)` is treated as a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _as_batch(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """View one 1-D sample `(C,)` as a batch `(1, C)`; index targets `()` as `(1,)`."""
    if y_pred.dim() == 1:
        y_pred = y_pred.unsqueeze(0)
        y_true = y_true.unsqueeze(0)
    if y_pred.dim() != 2:
        raise ValueError(f"y_pred must be (N, C) or (C,), got shape {tuple(y_pred.shape)}")
    return y_pred, y_true


def _check_same_shape(y_pred: Tensor, y_true: Tensor, name: str) -> None:
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"{name}: y_true shape {tuple(y_true.shape)} does not match "
            f"y_pred shape {tuple(y_pred.shape)}"
        )


def _is_index_target(y_pred: Tensor, y_true: Tensor) -> bool:
    """True for class indices `(N,)`, False for probabilities `(N, C)`; else ValueError."""
    if y_true.dim() == 1 and not y_true.is_floating_point():
        if y_true.shape[0] != y_pred.shape[0]:
            raise ValueError(
                f"cross_entropy: {y_true.shape[0]} class indices for a batch of {y_pred.shape[0]}"
            )
        C = y_pred.shape[1]
        on_host = y_true.device.type == "cpu"  # checking costs a device sync elsewhere
        if on_host and y_true.numel() and (int(y_true.min()) < 0 or int(y_true.max()) >= C):
            raise ValueError(f"cross_entropy: class index out of range [0, {C})")
        return True
    _check_same_shape(y_pred, y_true, "cross_entropy")
    if not y_true.is_floating_point():
        raise ValueError("cross_entropy: probability targets must be floating point")
    return False


def sse(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """L = Σ (y - t)². y_pred, y_true: (N, C) -> scalar."""
    _check_same_shape(y_pred, y_true, "sse")
    return ((y_pred - y_true) ** 2).sum()


def sse_grad(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """dL/dy = 2 (y - t). (N, C) -> (N, C)."""
    _check_same_shape(y_pred, y_true, "sse")
    return 2 * (y_pred - y_true)


def mse(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """L = mean (y - t)². (N, C) -> scalar."""
    _check_same_shape(y_pred, y_true, "mse")
    return ((y_pred - y_true) ** 2).mean()


def mse_grad(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """dL/dy = 2 (y - t) / (N C). (N, C) -> (N, C)."""
    _check_same_shape(y_pred, y_true, "mse")
    return (2.0 / y_pred.numel()) * (y_pred - y_true)


def cross_entropy(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """L = -(1/N) Σ_n Σ_c t_nc log softmax(y_n)_c. y_pred (N, C); y_true (N,) or (N, C)."""
    y_pred, y_true = _as_batch(y_pred, y_true)
    log_p = y_pred - torch.logsumexp(y_pred, dim=1, keepdim=True)
    if _is_index_target(y_pred, y_true):
        return -log_p.gather(1, y_true.unsqueeze(1)).mean()
    return -(y_true * log_p).sum() / y_pred.shape[0]


def cross_entropy_grad(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """dL/dy = (softmax(y) Σ_c t - t) / N. Returns the shape of y_pred: (N, C) or (C,)."""
    shape = y_pred.shape
    y_pred, y_true = _as_batch(y_pred, y_true)
    N = y_pred.shape[0]
    dL_dy = torch.softmax(y_pred, dim=1)
    if _is_index_target(y_pred, y_true):
        dL_dy[torch.arange(N, device=y_pred.device), y_true] -= 1
    else:
        dL_dy.mul_(y_true.sum(dim=1, keepdim=True)).sub_(y_true)
    return dL_dy.div_(N).reshape(shape)


def cross_entropy_value_and_grad(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """(L, dL/dy) of cross_entropy from one log-softmax: what a training step needs."""
    shape = y_pred.shape
    y_pred, y_true = _as_batch(y_pred, y_true)
    N = y_pred.shape[0]
    log_p = torch.log_softmax(y_pred, dim=1)
    if _is_index_target(y_pred, y_true):
        value = -log_p.gather(1, y_true.unsqueeze(1)).mean()
        dL_dy = log_p.exp_()
        dL_dy[torch.arange(N, device=y_pred.device), y_true] -= 1
    else:
        value = -(y_true * log_p).sum() / N
        dL_dy = log_p.exp_().mul_(y_true.sum(dim=1, keepdim=True)).sub_(y_true)
    return value, dL_dy.div_(N).reshape(shape)


def bce_with_logits(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """L = mean[max(y, 0) - y t + log(1 + exp(-|y|))]. (N, C) -> scalar."""
    _check_same_shape(y_pred, y_true, "bce_with_logits")
    return (y_pred.clamp(min=0) - y_pred * y_true + torch.log1p(torch.exp(-y_pred.abs()))).mean()


def bce_with_logits_grad(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """dL/dy = (σ(y) - t) / (N C). (N, C) -> (N, C)."""
    _check_same_shape(y_pred, y_true, "bce_with_logits")
    return (torch.sigmoid(y_pred) - y_true).div_(y_pred.numel())


@dataclass(frozen=True)
class Loss:
    """A loss value `L(y_pred, y_true)` and its gradient dL/dy_pred, plus torch's own form."""

    name: str
    value: Callable[[Tensor, Tensor], Tensor]
    grad: Callable[[Tensor, Tensor], Tensor]
    torch_value: Callable[[Tensor, Tensor], Tensor]
    fused: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None

    def value_and_grad(self, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
        """(L, dL/dy_pred) together, sharing work where the loss allows it."""
        if self.fused is not None:
            return self.fused(y_pred, y_true)
        return self.value(y_pred, y_true), self.grad(y_pred, y_true)


LOSSES: dict[str, Loss] = {
    "sse": Loss("sse", sse, sse_grad, lambda y, t: F.mse_loss(y, t, reduction="sum")),
    "mse": Loss("mse", mse, mse_grad, F.mse_loss),
    "cross_entropy": Loss("cross_entropy", cross_entropy, cross_entropy_grad, F.cross_entropy,
                          cross_entropy_value_and_grad),
    "bce_with_logits": Loss(
        "bce_with_logits", bce_with_logits, bce_with_logits_grad,
        F.binary_cross_entropy_with_logits,
    ),
}


def get_loss(name: str) -> Loss:
    """The loss called `name`; a ValueError lists the valid names otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; choose from: {', '.join(LOSSES)}") from None
