# expect-layers: fail unbiased_variance layernorm_backward
import torch


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta, (x, gamma, eps)


def layernorm_backward(dout, cache):
    x, gamma, eps = cache
    std = torch.sqrt(x.var(dim=1, keepdim=True) + eps)  # torch's default: unbiased
    xhat = (x - x.mean(dim=1, keepdim=True)) / std
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=1, keepdim=True)
          - xhat * (dxhat * xhat).mean(dim=1, keepdim=True)) / std
    return dx, (dout * xhat).sum(dim=0), dout.sum(dim=0)
