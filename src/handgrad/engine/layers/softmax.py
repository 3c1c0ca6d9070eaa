"""Softmax cross-entropy as a layer: the loss L of scores x and its gradient dL/dx.

    L     = -(1/N) Σ_n Σ_c t_nc log softmax(x_n)_c
    dL/dx = (softmax(x) Σ_c t - t) / N        (= (softmax(x) - t) / N for one-hot t)

over class indices (N,) or one-hot / probability targets (N, C), stable for huge scores
(log-sum-exp). The arithmetic is losses.py's cross-entropy (one definition in handgrad):
the forward computes L and dL/dx from one log-softmax, the backward scales by dout = dL_out/dL.
"""

from __future__ import annotations

import torch

from handgrad.engine.losses import cross_entropy_value_and_grad

Tensor = torch.Tensor


def softmax_cross_entropy_forward(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x (N, C) scores, y (N,) int64 class indices or (N, C) probabilities -> L (scalar,
    the mean over N) and the cache dL/dx (N, C)."""
    loss, dL_dx = cross_entropy_value_and_grad(x, y)
    return loss, dL_dx


def softmax_cross_entropy_backward(dout: Tensor | float, cache: Tensor,
                                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """dout: the scalar upstream gradient (1 for the loss itself) -> dL/dx (N, C); no
    parameters."""
    dL_dx = cache
    return dL_dx * dout, {}
