# expect-layers: fail not_scaled dropout_backward
import torch


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    if dropout_param["mode"] != "train":
        return x, None
    gen = torch.Generator().manual_seed(dropout_param["seed"])
    keep = torch.rand(x.shape, generator=gen, dtype=x.dtype) < p
    return x * keep / p, keep


def dropout_backward(dout, cache):
    keep = cache
    return dout if keep is None else dout * keep  # the forward's 1/p left out here
