# expect-layers: fail eps_forgotten layernorm_backward
import torch


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(dim=1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=1, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta, (x, gamma)


def layernorm_backward(dout, cache):
    x, gamma = cache  # the statistics recomputed here, without the forward's eps
    mu = x.mean(dim=1, keepdim=True)
    std = ((x - mu) ** 2).mean(dim=1, keepdim=True).sqrt()
    xhat = (x - mu) / std
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=1, keepdim=True)
          - xhat * (dxhat * xhat).mean(dim=1, keepdim=True)) / std
    return dx, (dout * xhat).sum(dim=0), dout.sum(dim=0)
