# expect-layers: fail bias_mean conv_backward
import torch
import torch.nn.functional as F


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    Fn, _, HH, WW = w.shape
    Ho, Wo = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.zeros(N, Fn, Ho, Wo, dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = torch.einsum("nchw,fchw->nf", window, w) + b
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    pad = conv_param["pad"]
    stride = conv_param["stride"]
    N, C, H, W = x.shape
    Fn, _, HH, WW = w.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dxp = torch.zeros_like(xp)
    dw = torch.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows = slice(i * stride, i * stride + HH)
            cols = slice(j * stride, j * stride + WW)
            g = dout[:, :, i, j]
            dw += torch.einsum("nf,nchw->fchw", g, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += torch.einsum("nf,fchw->nchw", g, w)
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    db = dout.sum(dim=0).mean(dim=(1, 2))
    return dx, dw, db
