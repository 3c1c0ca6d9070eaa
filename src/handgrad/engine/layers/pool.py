"""2-D max pooling, with the gradient routed as autograd routes it.

Each window's output is its maximum; its gradient goes to one input only, the first maximum
of the window in row-major order (torch's max_pool2d keeps that index: on a tie the later
values do not replace it). Windows that overlap add their gradients.

    win  = the windows of x padded with -inf     (N, C, H', W', HH·WW)   (windows.py)
    out, k = max over each window, k the index of its first maximum     (N, C, H', W')
    dL/dwin = dout at k, 0 elsewhere;  dL/dx = each window's gradient added back where read
"""

from __future__ import annotations

import torch

from handgrad.engine.layers.windows import windows, windows_backward

Tensor = torch.Tensor


def maxpool2d_forward(x: Tensor, kernel_size: int, stride: int | None = None,
                      padding: int = 0) -> tuple[Tensor, tuple]:
    """Max over each kernel_size² window (F.max_pool2d). x (N, C, H, W) -> out (N, C, H', W'),
    H' = (H + 2·padding - kernel_size) // stride + 1; stride defaults to kernel_size."""
    stride = kernel_size if stride is None else stride
    if not 0 <= 2 * padding <= kernel_size:
        raise ValueError(f"maxpool2d: padding must be at most half the kernel size "
                         f"({kernel_size}), got {padding}")
    H, W = x.shape[2:]
    if H + 2 * padding < kernel_size or W + 2 * padding < kernel_size:
        raise ValueError(f"maxpool2d: a {kernel_size}x{kernel_size} window does not fit a "
                         f"{H}x{W} input")
    win = windows(x, (kernel_size, kernel_size), stride, padding, float("-inf"))
    win = win.flatten(4)                                     # (N, C, H', W', HH·WW)
    out, k = win.max(dim=4, keepdim=True)                    # k: the first maximum
    return out.squeeze(4), (k, win.shape, x.shape, kernel_size, stride, padding)


def maxpool2d_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, C, H', W') -> dL/dx (N, C, H, W): each window's gradient to its first max,
    overlapping windows summed; no parameters."""
    k, win_shape, x_shape, kernel_size, stride, padding = cache
    dwin = dout.new_zeros(win_shape).scatter_(4, k, dout.unsqueeze(4))
    dwin = dwin.unflatten(4, (kernel_size, kernel_size))     # (N, C, H', W', HH, WW)
    return windows_backward(dwin, x_shape, stride, padding), {}
