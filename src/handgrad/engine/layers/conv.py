"""2-D convolution (cross-correlation, as torch.nn.Conv2d) over sliding windows (windows.py):

    out[n, f, h, w] = Σ_c Σ_i Σ_j  x_pad[n, c, h·s + i, w·s + j] W[f, c, i, j] + b[f]

Backward, each a contraction over what the forward summed (s the stride):

    dL/db[f]          = Σ_n Σ_h Σ_w dout[n, f, h, w]
    dL/dW[f, c, i, j] = Σ_n Σ_h Σ_w dout[n, f, h, w] x_pad[n, c, h·s + i, w·s + j]
    dL/dx_pad[n, c, h·s + i, w·s + j] += Σ_f dout[n, f, h, w] W[f, c, i, j]

dL/dW correlates the input with dout; dL/dx is the transposed convolution of dout with the
same filters, each window's gradient added back where the window was read (padding cut off).
No Python loop over pixels; the cached windows (a view of x) are reused for dL/dW.
"""

from __future__ import annotations

import torch

from handgrad.engine.layers.windows import windows, windows_backward

Tensor = torch.Tensor


def conv2d_forward(x: Tensor, W: Tensor, b: Tensor, stride: int = 1, padding: int = 0,
                   ) -> tuple[Tensor, tuple]:
    """out = x ⋆ W + b (F.conv2d). x (N, C, H, W), W (F, C, HH, WW), b (F,) ->
    out (N, F, H', W') with H' = (H + 2·padding - HH) // stride + 1 (W' alike)."""
    N, C, H, Wd = x.shape
    HH, WW = W.shape[2:]
    if W.shape[1] != C:
        raise ValueError(f"conv2d: input has {C} channels, the filters {W.shape[1]}")
    if H + 2 * padding < HH or Wd + 2 * padding < WW:
        raise ValueError(f"conv2d: a {HH}x{WW} kernel does not fit a {H}x{Wd} input with "
                         f"padding {padding}")
    win = windows(x, (HH, WW), stride, padding)                      # (N, C, H', W', HH, WW)
    out = torch.einsum("nchwij,fcij->nfhw", win, W) + b.view(1, -1, 1, 1)
    return out, (win, W, x.shape, stride, padding)


def conv2d_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, F, H', W') -> dL/dx (N, C, H, W), {"weight": dL/dW (F, C, HH, WW),
    "bias": dL/db (F,)}."""
    win, W, x_shape, stride, padding = cache
    db = dout.sum((0, 2, 3))                                         # (F,)
    dW = torch.einsum("nfhw,nchwij->fcij", dout, win)                # (F, C, HH, WW)
    dwin = torch.einsum("nfhw,fcij->nchwij", dout, W)                # (N, C, H', W', HH, WW)
    dx = windows_backward(dwin, x_shape, stride, padding)            # (N, C, H, W)
    return dx, {"weight": dW, "bias": db}
