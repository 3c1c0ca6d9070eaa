# expect-layers: fail eval_not_identity dropout_forward
import torch


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    mask = None
    if mode == "train":
        gen = torch.Generator().manual_seed(dropout_param["seed"])
        mask = (torch.rand(x.shape, generator=gen, dtype=x.dtype) < p) / p
        out = x * mask
    else:
        out = x * p
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return dout * mask
    return dout
