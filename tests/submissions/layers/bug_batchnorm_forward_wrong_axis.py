# expect-layers: fail wrong_axis batchnorm_forward
import torch


def batchnorm_forward(x, gamma, beta, bn_param):
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if mode == "test":
        std = torch.sqrt(bn_param["running_var"] + eps)
        return gamma * (x - bn_param["running_mean"]) / std + beta, None
    batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    bn_param["running_mean"] = momentum * bn_param["running_mean"] + (1 - momentum) * batch_mean
    bn_param["running_var"] = momentum * bn_param["running_var"] + (1 - momentum) * batch_var
    # normalised as in layernorm: each sample over its features
    mu = x.mean(dim=1, keepdim=True)
    std = torch.sqrt(((x - mu) ** 2).mean(dim=1, keepdim=True) + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(dim=1, keepdim=True)
          - xhat * (dxhat * xhat).mean(dim=1, keepdim=True)) / std
    return dx, (dout * xhat).sum(dim=0), dout.sum(dim=0)
