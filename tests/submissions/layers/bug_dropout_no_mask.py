# expect-layers: fail no_mask dropout_backward
import torch


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    mask = None
    if mode == "train":
        gen = torch.Generator().manual_seed(dropout_param["seed"])
        mask = (torch.rand(x.shape, generator=gen, dtype=x.dtype) < p).to(x.dtype) / p
        out = x * mask
    else:
        out = x
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return dout / dropout_param["p"]  # scaled like the kept units, but not masked
    return dout
