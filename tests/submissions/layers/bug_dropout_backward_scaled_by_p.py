# expect-layers: fail scaled_by_p dropout_backward
import torch


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (p, None)
    gen = torch.Generator().manual_seed(dropout_param["seed"])
    kept = (torch.rand(x.shape, generator=gen, dtype=x.dtype) < p).to(x.dtype)
    return x * kept / p, (p, kept)


def dropout_backward(dout, cache):
    p, kept = cache
    if kept is None:
        return dout
    return dout * kept * p
