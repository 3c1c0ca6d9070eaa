"""Sliding windows over images, shared by conv2d's im2col and maxpool2d: a strided view.

    windows(x)[n, c, h, w, i, j] = x_padded[n, c, h·stride + i, w·stride + j]
        x (N, C, H, W) -> (N, C, H', W', HH, WW), a view (no copy)

Each layer copies the view once into the order its products or its maximum want.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def windows(x: Tensor, kernel: tuple[int, int], stride: int, padding: int,
            pad_value: float = 0.0) -> Tensor:
    """x (N, C, H, W) -> (N, C, H', W', HH, WW), H' = (H + 2·padding - HH) // stride + 1."""
    if padding:
        x = F.pad(x, (padding,) * 4, value=pad_value)
    return x.unfold(2, kernel[0], stride).unfold(3, kernel[1], stride)
