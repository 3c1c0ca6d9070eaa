"""2-D convolution (cross-correlation, as torch.nn.Conv2d) by im2col: every receptive field
of x unfolded into a column, then one matrix product with the filters.

    cols = unfold(x)                       (N, C·HH·WW, L)    L = H'·W' positions
    out  = W_r cols + b                    (N, F, L) -> (N, F, H', W')    W_r: W as (F, C·HH·WW)

Backward, with dout_r = dout as (N, F, L):

    dL/db = Σ_n Σ_positions dout                         (F,)
    dL/dW = Σ_n dout_r colsᵀ                              (F, C, HH, WW)
    dL/dx = fold(W_rᵀ dout_r)                             (N, C, H, W)

`fold` adds each column back into the receptive field it came from (overlaps summed, the
padding cut off): dL/dx is the transposed convolution of dout with the same filters. No
Python loop over pixels; the cached columns are reused for dL/dW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def conv2d_forward(x: Tensor, W: Tensor, b: Tensor, stride: int = 1, padding: int = 0,
                   ) -> tuple[Tensor, tuple]:
    """out = x ⋆ W + b (F.conv2d). x (N, C, H, W), W (F, C, HH, WW), b (F,) ->
    out (N, F, H', W') with H' = (H + 2·padding - HH) // stride + 1 (W' alike)."""
    N, C, H, Wd = x.shape
    Fn, _, HH, WW = W.shape
    if W.shape[1] != C:
        raise ValueError(f"conv2d: input has {C} channels, the filters {W.shape[1]}")
    H_out, W_out = _out_size(H, HH, stride, padding), _out_size(Wd, WW, stride, padding)
    if H_out < 1 or W_out < 1:
        raise ValueError(f"conv2d: a {HH}x{WW} kernel does not fit a {H}x{Wd} input with "
                         f"padding {padding}")
    cols = F.unfold(x, (HH, WW), padding=padding, stride=stride)   # (N, C·HH·WW, L)
    out = W.reshape(Fn, -1) @ cols + b.view(1, Fn, 1)               # (N, F, L)
    return out.view(N, Fn, H_out, W_out), (cols, W, (H, Wd), stride, padding)


def conv2d_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, F, H', W') -> dL/dx (N, C, H, W), {"weight": dL/dW (F, C, HH, WW),
    "bias": dL/db (F,)}."""
    cols, W, (H, Wd), stride, padding = cache
    N, Fn = dout.shape[:2]
    dout_r = dout.reshape(N, Fn, -1)                                # (N, F, L)
    db = dout_r.sum((0, 2))                                         # (F,)
    dW = (dout_r @ cols.transpose(1, 2)).sum(0).view(W.shape)       # (F, C, HH, WW)
    dcols = W.reshape(Fn, -1).t() @ dout_r                          # (N, C·HH·WW, L)
    dx = F.fold(dcols, (H, Wd), W.shape[2:], padding=padding, stride=stride)
    return dx, {"weight": dW, "bias": db}


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1
