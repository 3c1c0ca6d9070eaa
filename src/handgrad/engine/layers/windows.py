"""Sliding windows over images, shared by conv2d and maxpool2d: a strided view out, and the
gradient of that view back onto the image.

    windows(x)[n, c, h, w, i, j] = x_padded[n, c, h·stride + i, w·stride + j]
        x (N, C, H, W) -> (N, C, H', W', HH, WW), a view (no copy)

Its backward adds every window position's gradient back where it was read from: one strided
slice a kernel offset (i, j), HH·WW of them in all, each covering every sample, channel and
output position at once (no loop over pixels); overlapping windows add up, the padding is
cut off. Windows that tile the image exactly (a 2×2 pool of stride 2) go back in one copy.
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


def windows_backward(dwin: Tensor, x_shape: torch.Size, stride: int, padding: int) -> Tensor:
    """dL/dwindows (N, C, H', W', HH, WW) -> dL/dx (N, C, H, W), overlaps summed."""
    N, C, H_out, W_out, HH, WW = dwin.shape
    H, W = x_shape[2:]
    if stride == HH == WW and padding == 0 and (H_out * HH, W_out * WW) == (H, W):
        # the windows tile the image: each pixel read once, its gradient put back in place
        return dwin.permute(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
    dx = dwin.new_zeros(N, C, H + 2 * padding, W + 2 * padding)
    for i in range(HH):
        for j in range(WW):
            dx[:, :, i:i + stride * (H_out - 1) + 1:stride,
               j:j + stride * (W_out - 1) + 1:stride] += dwin[..., i, j]
    return dx[:, :, padding:padding + H, padding:padding + W]
