"""Flatten: every sample's features in one row, and back for the gradient."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def flatten_forward(x: Tensor) -> tuple[Tensor, torch.Size]:
    """x (N, C, H, W) (or any (N, ...)) -> (N, C·H·W), sample by sample."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout: Tensor, cache: torch.Size) -> tuple[Tensor, dict[str, Tensor]]:
    """dL/dx is dL/dout (N, C·H·W) viewed as x's shape (N, C, H, W); no parameters."""
    return dout.reshape(cache), {}
