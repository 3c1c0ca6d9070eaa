"""A correct solution of handgrad's layers assignment, in torch (CS231n's signatures).

    handgrad check-backprop examples/layers/solution.py --assignment layers

Every forward returns (out, cache); every backward takes (dout, cache). Shapes: N batch,
D features, M outputs, C channels, F filters, H x W images, HH x WW kernels.
"""

import torch


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b. x (N, d1, ..., dk), w (D, M), b (M,) -> (N, M)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    """dout (N, M) -> dx (N, d1, ..., dk), dw (D, M), db (M,)."""
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(0)
    return dx, dw, db


def relu_forward(x):
    """out = max(x, 0), any shape."""
    return x.clamp(min=0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0 (0 at x == 0, as autograd)."""
    x = cache
    return dout * (x > 0)


def batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, D), gamma, beta (D,); bn_param: mode 'train' | 'test', eps, momentum,
    running_mean, running_var (D,), updated in place of the dict in training."""
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.get("running_mean", torch.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", torch.zeros(d, dtype=x.dtype))
    if bn_param["mode"] == "train":
        mu = x.mean(0)
        var = x.var(0, unbiased=False)
        std = torch.sqrt(var + eps)
        xhat = (x - mu) / std
        out = gamma * xhat + beta
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
        return out, (xhat, gamma, std)
    xhat = (x - running_mean) / torch.sqrt(running_var + eps)
    return gamma * xhat + beta, None


def batchnorm_backward(dout, cache):
    """The compact form: dx = (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ, means over the batch."""
    xhat, gamma, std = cache
    dgamma = (dout * xhat).sum(0)
    dbeta = dout.sum(0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0)) / std
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Normalise each sample over its D features. x (N, D), gamma, beta (D,)."""
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    """Batchnorm's compact form with the means over the features (axis 1)."""
    xhat, gamma, std = cache
    dgamma = (dout * xhat).sum(0)
    dbeta = dout.sum(0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(1, keepdim=True)
          - xhat * (dxhat * xhat).mean(1, keepdim=True)) / std
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    """Inverted dropout: p is the probability of keeping a unit; out = x * mask / p in
    mode 'train', x in mode 'test'."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode != "train":
        return x, (dropout_param, None)
    gen = torch.Generator()
    if "seed" in dropout_param:
        gen.manual_seed(dropout_param["seed"])
    else:
        gen.seed()
    mask = (torch.rand(x.shape, generator=gen, dtype=x.dtype) < p) / p
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def conv_forward(x, w, b, conv_param):
    """x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, H', W'),
    H' = 1 + (H + 2 pad - HH) / stride, as a matrix product over unfolded windows."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    h_out, w_out = 1 + (h + 2 * pad - hh) // stride, 1 + (wd + 2 * pad - ww) // stride
    cols = torch.nn.functional.unfold(x, (hh, ww), padding=pad, stride=stride)  # (N, C HH WW, L)
    out = (w.reshape(f, -1) @ cols + b[:, None]).reshape(n, f, h_out, w_out)
    return out, (x, w, conv_param, cols)


def conv_backward(dout, cache):
    """dx by folding the windows' gradients back (the transposed convolution)."""
    x, w, conv_param, cols = cache
    f, _, hh, ww = w.shape
    dout_flat = dout.reshape(dout.shape[0], f, -1)  # (N, F, L)
    db = dout.sum((0, 2, 3))
    dw = torch.einsum("nfl,nkl->fk", dout_flat, cols).reshape(w.shape)
    dcols = w.reshape(f, -1).T @ dout_flat  # (N, C HH WW, L)
    dx = torch.nn.functional.fold(dcols, x.shape[2:], (hh, ww), padding=conv_param["pad"],
                                  stride=conv_param["stride"])
    return dx, dw, db


def max_pool_forward(x, pool_param):
    """x (N, C, H, W) -> out (N, C, H', W'), windows pool_height x pool_width."""
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, wd = x.shape
    windows = x.unfold(2, ph, s).unfold(3, pw, s)  # (N, C, H', W', ph, pw)
    flat = windows.reshape(*windows.shape[:4], -1)
    out, index = flat.max(-1)
    return out, (x.shape, pool_param, index)


def max_pool_backward(dout, cache):
    """Each window's gradient to its first maximum (row-major), as autograd sends it."""
    shape, pool_param, index = cache
    pw, s = pool_param["pool_width"], pool_param["stride"]
    dx = torch.zeros(shape, dtype=dout.dtype)
    h_out, w_out = dout.shape[2:]
    for i in range(h_out):
        for j in range(w_out):
            k = index[:, :, i, j]
            rows, cols = i * s + k // pw, j * s + k % pw
            n, c = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]),
                                  indexing="ij")
            dx[n, c, rows, cols] += dout[:, :, i, j]
    return dx


def softmax_loss(x, y):
    """The mean cross-entropy of the softmax of x (N, C) at the labels y (N,), and dx."""
    n = x.shape[0]
    shifted = x - x.max(1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(1, keepdim=True).log()
    loss = -log_probs[torch.arange(n), y].mean()
    dx = log_probs.exp()
    dx[torch.arange(n), y] -= 1
    return loss, dx / n
