# expect-layers: fail running_var_unbiased batchnorm_forward
import torch


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
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * x.var(dim=0)
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
