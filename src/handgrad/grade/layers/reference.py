"""The truth every layer function is judged against: torch.nn.functional in float64, and
its gradients by autograd.

| layer        | forward (what `out` must be)                          | backward by autograd of |
|--------------|-------------------------------------------------------|-------------------------|
| affine       | x.reshape(N, D) @ w + b, w of shape (D, M)            | out · dout              |
| relu         | max(x, 0)                                             | dx = dout ⊙ [x > 0]     |
| batchnorm    | F.batch_norm, training: batch mean, biased variance   | out · dout              |
| layernorm    | F.layer_norm over the features of each sample         | out · dout              |
| conv         | F.conv2d(x, w, b, stride, padding=pad)                | out · dout              |
| max_pool     | F.max_pool2d: the gradient to the first maximum       | out · dout              |
| softmax_loss | F.cross_entropy(x, y): the mean over the batch        | loss                    |

Batchnorm's running statistics follow CS231n: running = momentum · running + (1 - momentum)
· batch statistic, with the biased batch variance. Dropout's truth depends on the student's
own random mask and is judged in `judge.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # cases.py asks `forward` for the shape of dout
    from handgrad.grade.layers.cases import LayerCase

Tensor = torch.Tensor


def forward(case: LayerCase, args: list) -> tuple[Tensor, dict[str, Tensor]]:
    """(out, extras): the forward output and, for batchnorm in training, the running
    statistics it must leave in bn_param."""
    layer = case.layer
    if layer == "affine":
        x, w, b = args
        return x.reshape(x.shape[0], -1) @ w + b, {}
    if layer == "relu":
        return torch.relu(args[0]), {}
    if layer == "batchnorm":
        return _batchnorm(*args)
    if layer == "layernorm":
        x, gamma, beta, param = args
        return F.layer_norm(x, x.shape[1:], gamma, beta, param["eps"]), {}
    if layer == "dropout":
        x, param = args
        return x.clone(), {}  # the shape only: the mask is the student's
    if layer == "conv":
        x, w, b, param = args
        return F.conv2d(x, w, b, param["stride"], param["pad"]), {}
    if layer == "max_pool":
        x, param = args
        return F.max_pool2d(x, (param["pool_height"], param["pool_width"]),
                            param["stride"]), {}
    x, y = args
    return F.cross_entropy(x, y), {}


def _batchnorm(x: Tensor, gamma: Tensor, beta: Tensor, param: dict) -> tuple:
    eps, m = param["eps"], param["momentum"]
    rm, rv = param["running_mean"], param["running_var"]
    if param["mode"] != "train":
        return F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps), {}
    out = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    mean, var = x.mean(0), x.var(0, correction=0)
    return out, {"running_mean": m * rm + (1 - m) * mean,
                 "running_var": m * rv + (1 - m) * var}


def differentiable(case: LayerCase, args: list) -> list[int]:
    """The positions in args of the tensors the backward returns gradients for."""
    return {"affine": [0, 1, 2], "relu": [0], "batchnorm": [0, 1, 2], "layernorm": [0, 1, 2],
            "dropout": [0], "conv": [0, 1, 2], "max_pool": [0], "softmax_loss": [0]}[case.layer]


def backward(case: LayerCase, args: list, dout: Tensor | None) -> tuple[Tensor, ...]:
    """What the layer's backward must return, by autograd of `forward` (for softmax_loss:
    (loss, dx))."""
    args = [a.detach().clone().requires_grad_(i in differentiable(case, args))
            if isinstance(a, Tensor) and a.is_floating_point() else a
            for i, a in enumerate(args)]
    with torch.enable_grad():
        out, _ = forward(case, args)
        inputs = [args[i] for i in differentiable(case, args)]
        if dout is None:
            return (out.detach(), *torch.autograd.grad(out, inputs))
        return torch.autograd.grad(out, inputs, dout)
