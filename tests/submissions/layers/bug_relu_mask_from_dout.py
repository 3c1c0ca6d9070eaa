# expect-layers: fail mask_from_dout relu_backward
import torch


def relu_forward(x):
    out = torch.maximum(x, torch.zeros_like(x))
    return out, x


def relu_backward(dout, cache):
    dx = dout * (dout > 0)
    return dx
