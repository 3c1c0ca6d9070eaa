"""2-D max pooling, with the gradient routed as autograd routes it.

Each window's output is its maximum; its gradient goes to one input only, the first maximum
of the window in row-major order (torch's max_pool2d keeps that index: on a tie the later
values do not replace it). Windows that overlap add their gradients.

    win = x's windows offset by offset       (HH·WW, N, C, H', W')   x padded with -inf
    out = max over the offsets                (N, C, H', W')
    k   = the first offset o (row-major) with win[o] = out, as its place h·W + w in x's plane
    dL/dx[n, c, k] += dout[n, c, h', w']     for every window (h', w'): one scatter-add

The offsets first: the maximum and the search for it run over HH·WW whole (N, C, H', W')
slices, not over the short last axis of every window (2-3× faster than F.max_pool2d's
forward on the CPU). When autograd differentiates this forward (the autograd engine), out
is read at k instead, the same values, so that autograd routes the gradient as torch's
max_pool2d does, ties included (the max of a tie would share it).
"""

from __future__ import annotations

import torch

from handgrad.engine.layers.windows import windows

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
    with torch.no_grad():   # the maxima and where they are
        win = windows(x, (kernel_size, kernel_size), stride, padding, float("-inf"))
        win = win.permute(4, 5, 0, 1, 2, 3).reshape(-1, *win.shape[:4])  # (HH·WW, N, C, H', W')
        out = win.amax(0)                                            # (N, C, H', W')
        k = _first_maximum(win, out, kernel_size, stride, padding, (H, W))
    if torch.is_grad_enabled() and x.requires_grad:   # autograd differentiates this forward:
        out = x.flatten(2).gather(2, k.flatten(2)).view(k.shape)     # read at k, ties as torch
    return out, (k, x.shape)


def maxpool2d_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, C, H', W') -> dL/dx (N, C, H, W): each window's gradient to its first max,
    overlapping windows summed; no parameters."""
    k, x_shape = cache
    N, C = x_shape[:2]
    dx = dout.new_zeros(N, C, x_shape[2] * x_shape[3])
    dx.scatter_add_(2, k.view(N, C, -1), dout.reshape(N, C, -1))   # (N, C, H·W)
    return dx.view(x_shape), {}


def _first_maximum(win: Tensor, peak: Tensor, kernel_size: int, stride: int, padding: int,
                   image: tuple[int, int]) -> Tensor:
    """k (N, C, H', W') int64: h·W + w of the first offset (i, j) of each window, in
    row-major order, whose value is not below the window's maximum `peak` (a window holding
    NaN, whose peak is NaN: its first pixel, where torch takes its last NaN); the padding
    never counts.

    k = corner + i·W + j, corner = the window's top-left h·W + w (in the padding if any);
    bool and int32 passes over whole slices (torch.where is 20× slower on the CPU)."""
    H, W = image
    H_out, W_out = peak.shape[2:]
    top = torch.arange(H_out, device=peak.device) * stride - padding
    left = torch.arange(W_out, device=peak.device) * stride - padding
    found = torch.zeros(peak.shape, dtype=torch.bool, device=peak.device)
    shift = torch.zeros(peak.shape, dtype=torch.int32, device=peak.device)
    for o in range(kernel_size ** 2):
        i, j = divmod(o, kernel_size)
        first = ~(win[o] < peak) & ~found
        if padding:   # the rows and columns of this offset that fall inside the image
            first &= _inside(top + i, H).view(-1, 1) & _inside(left + j, W)
        found |= first
        shift.add_(first, alpha=i * W + j)
    corner = top.view(-1, 1) * W + left                             # (H', W') int64
    return corner + shift


def _inside(positions: Tensor, size: int) -> Tensor:
    return (positions >= 0) & (positions < size)
