# expect-layers: fail mask_inverted relu_backward
import torch


def relu_forward(x):
    out = torch.maximum(x, torch.zeros_like(x))
    return out, x


def relu_backward(dout, cache):
    dx = dout * (cache < 0)
    return dx
