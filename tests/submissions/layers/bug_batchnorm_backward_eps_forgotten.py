# expect-layers: fail eps_forgotten batchnorm_backward
import torch


def batchnorm_forward(x, gamma, beta, bn_param):
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if mode == "test":
        std = torch.sqrt(bn_param["running_var"] + eps)
        return gamma * (x - bn_param["running_mean"]) / std + beta, None
    mu = x.mean(dim=0)
    var = ((x - mu) ** 2).mean(dim=0)
    out = gamma * (x - mu) / torch.sqrt(var + eps) + beta
    bn_param["running_mean"] = momentum * bn_param["running_mean"] + (1 - momentum) * mu
    bn_param["running_var"] = momentum * bn_param["running_var"] + (1 - momentum) * var
    return out, (x, gamma)


def batchnorm_backward(dout, cache):
    x, gamma = cache  # the statistics recomputed here, without the forward's eps
    mu = x.mean(dim=0)
    std = torch.sqrt(((x - mu) ** 2).mean(dim=0))
    xhat = (x - mu) / std
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=0) - xhat * (dxhat * xhat).mean(dim=0)) / std
    return dx, (dout * xhat).sum(dim=0), dout.sum(dim=0)
