"""The hand-written backward as a `torch.autograd.Function`.

`MLPFunction.apply(x, activations, W1, b1, …, WL, bL)` runs the MLP forward and, when autograd
asks for gradients, answers with `backward_layers`: the same pure layer functions
(`linear_backward`, `Activation.backward`) that `backpropagation` calls. So
`torch.autograd.gradcheck` can test the hand-written gradient directly, and a model trained
with `loss.backward()` can use it through `HandBackward(model)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from handgrad.engine.activations import Activation
from handgrad.engine.backprop import Layer, backward_layers
from handgrad.engine.model import MLP

Tensor = torch.Tensor


class MLPFunction(torch.autograd.Function):
    """y = a[L] of the MLP with weights (W_l, b_l); backward written by hand."""

    @staticmethod
    def forward(ctx, x: Tensor, acts: Sequence[Activation], *params: Tensor) -> Tensor:
        """x (N, D), params = W1 (H1, D), b1 (H1,), …; returns a[L] (N, H_L)."""
        weights = params[0::2]
        a, zs, as_ = x, [], []
        for W, b, act in zip(weights, params[1::2], acts, strict=True):
            z = F.linear(a, W, b)
            a = act.f(z)
            zs.append(z)
            as_.append(a)
        ctx.acts = acts
        ctx.save_for_backward(x, *weights, *zs, *as_)
        return a

    @staticmethod
    def backward(ctx, dL_dy: Tensor):
        L = len(ctx.acts)
        saved = ctx.saved_tensors
        x, weights, zs, as_ = saved[0], saved[1:L + 1], saved[L + 1:2 * L + 1], saved[2 * L + 1:]
        layers = [Layer(weights[i], ctx.acts[i], zs[i], as_[i]) for i in range(L)]
        dL_dx, grads = backward_layers(dL_dy, x, layers, input_grad=ctx.needs_input_grad[0])
        return (dL_dx, None, *(g for pair in grads for g in pair))


def mlp_apply(model: MLP, x: Tensor) -> Tensor:
    """model(x) whose gradient autograd takes from the hand-written backward. x: (N, D)."""
    params = [p for pair in model.params_by_layer() for p in pair]
    acts = [model.act[l] for l in range(1, model.L + 1)]
    return MLPFunction.apply(x, acts, *params)


class HandBackward(nn.Module):
    """Wraps an `MLP` so that `loss.backward()` runs handgrad's hand-written backward."""

    def __init__(self, model: MLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return mlp_apply(self.model, x)
