"""2-D max pooling, with the gradient routed as autograd routes it.

Each window's output is its maximum; its gradient goes to one input only, the first maximum
of the window in row-major order (torch's max_pool2d keeps that index: on a tie the later
values do not replace it). Windows that overlap add their gradients.

    cols = unfold(x, padded with -inf)           (N·C, HH·WW, L)
    k    = argmax over the window (first max)    (N·C, 1, L)
    out  = cols[k]                               (N, C, H', W')
    dL/dcols = dout scattered to k, 0 elsewhere; dL/dx = fold(dL/dcols) without the padding
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def maxpool2d_forward(x: Tensor, kernel_size: int, stride: int | None = None,
                      padding: int = 0) -> tuple[Tensor, tuple]:
    """Max over each kernel_size² window (F.max_pool2d). x (N, C, H, W) -> out (N, C, H', W'),
    H' = (H + 2·padding - kernel_size) // stride + 1; stride defaults to kernel_size."""
    stride = kernel_size if stride is None else stride
    if not 0 <= 2 * padding <= kernel_size:
        raise ValueError(f"maxpool2d: padding must be at most half the kernel size "
                         f"({kernel_size}), got {padding}")
    N, C, H, W = x.shape
    if H + 2 * padding < kernel_size or W + 2 * padding < kernel_size:
        raise ValueError(f"maxpool2d: a {kernel_size}x{kernel_size} window does not fit a "
                         f"{H}x{W} input")
    padded = F.pad(x, (padding,) * 4, value=float("-inf")) if padding else x
    H_p, W_p = padded.shape[2:]
    cols = F.unfold(padded.reshape(N * C, 1, H_p, W_p), kernel_size, stride=stride)
    k = cols.argmax(dim=1, keepdim=True)                          # (N·C, 1, L) first max
    out = cols.gather(1, k)                                       # (N·C, 1, L)
    H_out = (H_p - kernel_size) // stride + 1
    W_out = (W_p - kernel_size) // stride + 1
    cache = (k, cols.shape, x.shape, kernel_size, stride, padding)
    return out.view(N, C, H_out, W_out), cache


def maxpool2d_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, C, H', W') -> dL/dx (N, C, H, W): each window's gradient to its first max,
    overlapping windows summed; no parameters."""
    k, cols_shape, (N, C, H, W), kernel_size, stride, p = cache
    dcols = dout.new_zeros(cols_shape).scatter_(1, k, dout.reshape(N * C, 1, -1))
    dx = F.fold(dcols, (H + 2 * p, W + 2 * p), kernel_size, stride=stride)
    return dx[..., p:p + H, p:p + W].reshape(N, C, H, W), {}
