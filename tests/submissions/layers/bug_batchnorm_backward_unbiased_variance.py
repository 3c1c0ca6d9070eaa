# expect-layers: fail unbiased_variance batchnorm_backward
import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    x, gamma, beta = np.asarray(x), np.asarray(gamma), np.asarray(beta)
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if bn_param["mode"] == "test":
        xhat = (x - bn_param["running_mean"]) / np.sqrt(bn_param["running_var"] + eps)
        return gamma * xhat + beta, None
    mu, var = x.mean(axis=0), x.var(axis=0)
    bn_param["running_mean"] = momentum * np.asarray(bn_param["running_mean"]) + (1 - momentum) * mu
    bn_param["running_var"] = momentum * np.asarray(bn_param["running_var"]) + (1 - momentum) * var
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, (x, gamma, eps)


def batchnorm_backward(dout, cache):
    x, gamma, eps = cache
    dout = np.asarray(dout)
    std = np.sqrt(x.var(axis=0, ddof=1) + eps)  # ddof=1: not the forward's variance
    xhat = (x - x.mean(axis=0)) / std
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
