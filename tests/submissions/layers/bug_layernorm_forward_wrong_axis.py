# expect-layers: fail wrong_axis layernorm_forward
import torch


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(dim=0)  # batchnorm's axis: over the batch, not each sample's features
    var = ((x - mu) ** 2).mean(dim=0)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=0) - xhat * (dxhat * xhat).mean(dim=0)) / std
    return dx, (dout * xhat).sum(dim=0), dout.sum(dim=0)
