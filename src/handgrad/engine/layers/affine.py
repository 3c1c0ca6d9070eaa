"""The affine (fully connected) layer z = x Wᵀ + b in the layer form, over backprop.py's
`linear_backward` (the MLP's own equations, written once)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handgrad.engine.backprop import linear_backward

Tensor = torch.Tensor


def affine_forward(x: Tensor, W: Tensor, b: Tensor) -> tuple[Tensor, tuple]:
    """z = x Wᵀ + b. x (N, D), W (H, D) as nn.Linear keeps it, b (H,) -> z (N, H)."""
    return F.linear(x, W, b), (x, W)


def affine_backward(dout: Tensor, cache: tuple, input_grad: bool = True,
                    ) -> tuple[Tensor | None, dict[str, Tensor]]:
    """dout = dL/dz (N, H) -> dL/dx (N, D) (None without `input_grad`),
    {"weight": dL/dW (H, D), "bias": dL/db (H,)}."""
    x, W = cache
    dx, dW, db = linear_backward(dout, x, W, input_grad)
    return dx, {"weight": dW, "bias": db}
