"""The hand-written backward pass of `MLP` over a batch (see docs/backprop.md).

With a[0] = x (N, D), z[l] = a[l-1] W_lᵀ + b_l and a[l] = f_l(z[l]):

    dL/da[L] = loss.grad(a[L], y)                       (N, H_L)
    dL/dz[l] = dL/da[l] ⊙ f_l'(z[l])                    (N, H_l)
    dL/dW_l  = dL/dz[l]ᵀ a[l-1]                          (H_l, H_{l-1})   sums over the batch
    dL/db_l  = Σ_n dL/dz[l]_n                            (H_l,)           sums over the batch
    dL/da[l-1] = dL/dz[l] W_l                            (N, H_{l-1})     one row per sample

The batch is summed only where a parameter gradient is formed: dL/da keeps one row per
sample all the way down, which is what makes this right for every batch size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handgrad.engine.activations import Activation
from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP

Tensor = torch.Tensor


def _out_buffer(buffers: dict[int, Tensor], l: int, like: Tensor) -> Tensor | None:
    """The reusable buffer for layer l when it matches `like`'s shape, dtype and device."""
    buf = buffers.get(l)
    if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
        return None
    return buf if buf.device == like.device else None


@torch.no_grad()
def backpropagation(
    model: MLP,
    y_true: Tensor,
    y_pred: Tensor,
    loss: str = "sse",
    accumulate_grad: bool = False,
) -> None:
    """Fill `model.dL_dw[l]`, `model.dL_db[l]` for the batch of the last `model(x)` call.

    y_true: targets for `loss` ((N, C), or (N,) class indices for cross_entropy);
    y_pred: model output a[L], (N, C) or (C,) for one sample.
    accumulate_grad: also add the gradients into each parameter's `.grad` (as autograd does),
    so that any optimizer can step on them.

    `model.dL_dw` / `model.dL_db` are buffers reused from call to call (written in place when
    shapes match): clone them to keep a gradient past the next call.
    """
    dL_da = get_loss(loss).grad(y_pred, y_true)
    backward_from_output(model, dL_da)
    if accumulate_grad:
        _accumulate_into_grads(model)


@torch.no_grad()
def backward_from_output(model: MLP, dL_da: Tensor) -> None:
    """Fill `model.dL_dw`, `model.dL_db` from dL/da[L] (N, H_L) (or (H_L,)) of the last
    forward: the part of `backpropagation` after the loss. Overwrites `dL_da`."""
    layers = [
        Layer(model.weight(l), model.act[l], _batched(model.z[l]), _batched(model.a[l]))
        for l in range(1, model.L + 1)
    ]
    backward_layers(_batched(dL_da), _batched(model.a[0]), layers, model.dL_dw, model.dL_db)


class Layer(NamedTuple):
    """What the backward pass needs of layer l: W_l (H_l, H_{l-1}), its activation, and the
    stored z[l], a[l] (N, H_l)."""

    W: Tensor
    act: Activation
    z: Tensor
    a: Tensor


def backward_layers(
    dL_da: Tensor,
    x: Tensor,
    layers: list[Layer],
    dL_dw: dict[int, Tensor],
    dL_db: dict[int, Tensor],
    input_grad: bool = False,
) -> Tensor | None:
    """The equations above, from dL/da[L] (N, H_L) down to layer 1; x = a[0] (N, D).

    Writes dL_dw[l] (H_l, H_{l-1}) and dL_db[l] (H_l,) for l = L..1, reusing their buffers
    when they fit. Returns dL/dx (N, D) when `input_grad`, else None. Overwrites `dL_da`.
    """
    for l in range(len(layers), 0, -1):
        layer = layers[l - 1]
        a_prev = layers[l - 2].a if l > 1 else x
        dL_dz = layer.act.backward(dL_da, layer.z, layer.a)                    # (N, H_l)
        dL_dw[l] = torch.mm(dL_dz.t(), a_prev, out=_out_buffer(dL_dw, l, layer.W))
        dL_db[l] = torch.sum(dL_dz, 0, out=_out_buffer(dL_db, l, layer.W[:, 0]))
        if l > 1 or input_grad:
            dL_da = torch.mm(dL_dz, layer.W)                                   # (N, H_{l-1})
    return dL_da if input_grad else None


def _batched(t: Tensor) -> Tensor:
    """(D,) -> (1, D); (N, D) unchanged."""
    return t.unsqueeze(0) if t.dim() == 1 else t


def _accumulate_into_grads(model: MLP) -> None:
    """param.grad += dL/dparam for every W_l and b_l (a fresh copy when grad is None)."""
    for l in range(1, model.L + 1):
        for param, grad in ((model.weight(l), model.dL_dw[l]), (model.bias(l), model.dL_db[l])):
            if param.grad is None:
                param.grad = grad.clone()
            else:
                param.grad.add_(grad)


def bind_grads(model: MLP) -> None:
    """Make each `param.grad` the very buffer `backpropagation` writes `dL_dw` / `dL_db` into.

    After this, each `backpropagation(model, …)` call leaves the gradient of its batch in
    `.grad` with no copy and no zeroing: the fast path of the manual training engine. Do not
    call `optimizer.zero_grad()` in between: it would unbind the buffers.
    """
    for l in range(1, model.L + 1):
        W, b = model.weight(l), model.bias(l)
        if _out_buffer(model.dL_dw, l, W) is None:
            model.dL_dw[l] = torch.zeros_like(W)
        if _out_buffer(model.dL_db, l, b) is None:
            model.dL_db[l] = torch.zeros_like(b)
        W.grad, b.grad = model.dL_dw[l], model.dL_db[l]
