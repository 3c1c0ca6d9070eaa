"""2-D convolution (cross-correlation, as torch.nn.Conv2d) and its backward written by hand.

    out[n, f, h, w] = Σ_c Σ_i Σ_j x_pad[n, c, h·s + i, w·s + j] W[f, c, i, j] + b[f]

The forward is that correlation (`F.conv2d`). Each gradient contracts dout with what the
forward multiplied it by:

    dL/db = Σ_n Σ_positions dout                              (F,)
    dL/dW = Σ_n dout_n cols_nᵀ                                 (F, C, HH, WW)   x ⋆ dout
    dL/dx = dout, dilated by the stride, ⋆ rot180(W)ᵀ          (N, C, H, W)   full correlation

dL/dW is the correlation of the input with dout: with cols_n = im2col(x_n) (C·HH·WW, L)
(every receptive field of sample n's padded input a column, L = H'·W' positions) and
dout_n as (F, L), one product per sample, summed over the batch. dL/dx sends each
position's dout back through the filters onto the pixels its window read: the full
correlation of dout (zeros inserted between its rows and columns for a stride > 1) with
every kernel turned by 180° and its channels swapped (F, C) -> (C, F): the transposed
convolution, `conv_transpose2d`. No Python loop over pixels, no autograd graph; the input
gradient is skipped when not needed (the first layer of a network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handgrad.engine.layers.windows import windows

Tensor = torch.Tensor


def conv2d_forward(x: Tensor, W: Tensor, b: Tensor, stride: int = 1, padding: int = 0,
                   ) -> tuple[Tensor, tuple]:
    """out = x ⋆ W + b (F.conv2d). x (N, C, H, W), W (F, C, HH, WW), b (F,) ->
    out (N, F, H', W') with H' = (H + 2·padding - HH) // stride + 1 (W' alike)."""
    N, C, H, Wd = x.shape
    Fn, _, HH, WW = W.shape
    if W.shape[1] != C:
        raise ValueError(f"conv2d: input has {C} channels, the filters {W.shape[1]}")
    if H + 2 * padding < HH or Wd + 2 * padding < WW:
        raise ValueError(f"conv2d: a {HH}x{WW} kernel does not fit a {H}x{Wd} input with "
                         f"padding {padding}")
    out = F.conv2d(x, W, b, stride=stride, padding=padding)          # (N, F, H', W')
    return out, (x, W, stride, padding)


def conv2d_backward(dout: Tensor, cache: tuple, input_grad: bool = True,
                    ) -> tuple[Tensor | None, dict[str, Tensor]]:
    """dout (N, F, H', W') -> dL/dx (N, C, H, W) (None without `input_grad`),
    {"weight": dL/dW (F, C, HH, WW), "bias": dL/db (F,)}."""
    x, W, stride, padding = cache
    N, Fn = dout.shape[:2]
    db = dout.sum((0, 2, 3))                                        # (F,)
    cols = im2col(x, W.shape[2:], stride, padding)                  # (N, C·HH·WW, L)
    dout_r = dout.reshape(N, Fn, -1)                                # (N, F, L)
    dW = (dout_r @ cols.transpose(1, 2)).sum(0).view(W.shape)       # (F, C, HH, WW)
    dx = _transposed_conv(dout, W, x.shape, stride, padding) if input_grad else None
    return dx, {"weight": dW, "bias": db}


def im2col(x: Tensor, kernel: tuple[int, int], stride: int, padding: int) -> Tensor:
    """x (N, C, H, W) -> cols (N, C·HH·WW, H'·W'): column l of sample n holds the receptive
    field of its position l (F.unfold's columns), one copy of the windows' strided view
    (2-6× faster than unfold's kernel on the CPU)."""
    N, C = x.shape[:2]
    win = windows(x, kernel, stride, padding)                       # (N, C, H', W', HH, WW)
    return win.permute(0, 1, 4, 5, 2, 3).reshape(N, C * kernel[0] * kernel[1], -1)


def _transposed_conv(dout: Tensor, W: Tensor, x_shape: torch.Size, stride: int,
                     padding: int) -> Tensor:
    """dout (N, F, H', W') spread back through the filters onto the input (N, C, H, W):
    the full correlation of the stride-dilated dout with the kernels turned by 180°;
    output_padding restores the last rows and columns that no window read."""
    (H, Wd), (HH, WW), (H_out, W_out) = x_shape[2:], W.shape[2:], dout.shape[2:]
    extra = (H - ((H_out - 1) * stride - 2 * padding + HH),
             Wd - ((W_out - 1) * stride - 2 * padding + WW))
    return F.conv_transpose2d(dout, W, stride=stride, padding=padding, output_padding=extra)
