# expect-layers: fail dgamma_from_x layernorm_backward
import torch


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(dim=1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=1, keepdim=True)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (x, xhat, gamma, std)


def layernorm_backward(dout, cache):
    x, xhat, gamma, std = cache
    dbeta = dout.sum(dim=0)
    dgamma = (dout * x).sum(dim=0)  # the raw input, not the normalised x̂
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=1, keepdim=True)
          - xhat * (dxhat * xhat).mean(dim=1, keepdim=True)) / std
    return dx, dgamma, dbeta
