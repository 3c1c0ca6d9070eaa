# expect-layers: pass
"""Every layer as the bug_*.py files have it, less their one mistake."""
import numpy as np
import torch
import torch.nn.functional as F


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(dim=0)
    return dx, dw, db


def relu_forward(x):
    out = torch.maximum(x, torch.zeros_like(x))
    return out, x


def relu_backward(dout, cache):
    dx = dout * (cache > 0)
    return dx


def batchnorm_forward(x, gamma, beta, bn_param):
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    running_mean = bn_param["running_mean"]
    running_var = bn_param["running_var"]
    if mode == "train":
        mu = x.mean(dim=0)
        var = ((x - mu) ** 2).mean(dim=0)
        std = torch.sqrt(var + eps)
        xhat = (x - mu) / std
        out = gamma * xhat + beta
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
        return out, (xhat, gamma, std)
    out = gamma * (x - running_mean) / torch.sqrt(running_var + eps) + beta
    return out, None


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dbeta = dout.sum(dim=0)
    dgamma = (dout * xhat).sum(dim=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=0) - xhat * (dxhat * xhat).mean(dim=0)) / std
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    x, gamma, beta = np.asarray(x), np.asarray(gamma), np.asarray(beta)
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    xhat, gamma, std = cache
    dout = np.asarray(dout)
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=1, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    mask = None
    if mode == "train":
        gen = torch.Generator().manual_seed(dropout_param["seed"])
        mask = (torch.rand(x.shape, generator=gen, dtype=x.dtype) < p) / p
        out = x * mask
    else:
        out = x
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return dout * mask
    return dout


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
    db = dout.sum(dim=(0, 2, 3))
    return dx, dw, db


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = torch.zeros(N, C, Ho, Wo, dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].amax(dim=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = torch.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
            mask = first_max(window)
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += mask * dout[:, :, i, j, None, None]
    return dx


def first_max(window):
    """1 at the first maximum (row-major) of each window, 0 elsewhere."""
    flat = window.reshape(window.shape[0], window.shape[1], -1)
    first = torch.nn.functional.one_hot(flat.argmax(-1), flat.shape[-1])
    return first.reshape(window.shape).to(window.dtype)


def softmax_loss(x, y):
    N = x.shape[0]
    shifted = x - x.max(dim=1, keepdim=True).values
    probs = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
    loss = -torch.log(probs[torch.arange(N), y]).mean()
    dx = probs.clone()
    dx[torch.arange(N), y] -= 1
    dx = dx / N
    return loss, dx
