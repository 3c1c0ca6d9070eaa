"""The hand-written backward pass of `MLP` over a batch (see docs/backprop.md).

With a[0] = x (N, D), z[l] = a[l-1] W_lᵀ + b_l and a[l] = f_l(z[l]):

    dL/da[L] = loss.grad(a[L], y)                       (N, H_L)
    dL/dz[l] = dL/da[l] ⊙ f_l'(z[l])                    (N, H_l)
    dL/dW_l  = dL/dz[l]ᵀ a[l-1]                          (H_l, H_{l-1})   sums over the batch
    dL/db_l  = Σ_n dL/dz[l]_n                            (H_l,)           sums over the batch
    dL/da[l-1] = dL/dz[l] W_l                            (N, H_{l-1})     one row per sample

The batch is summed only where a parameter gradient is formed: dL/da keeps one row per
sample all the way down, which is what makes this right for every batch size.

Each layer's backward is a pure function in the CS231n form: `linear_backward` here and
`Activation.backward` in activations.py. `backpropagation` and `MLPFunction` call them;
the training step's fast path (flat.py) calls their in-place twins, `linear_backward_into`
and `Activation.backward_`, on buffers it owns.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handgrad.engine.activations import Activation
from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP

Tensor = torch.Tensor
Grads = list[tuple[Tensor, Tensor]]


def linear_backward(dL_dz: Tensor, a_prev: Tensor, W: Tensor, input_grad: bool = True,
                    ) -> tuple[Tensor | None, Tensor, Tensor]:
    """Backward of z = a_prev Wᵀ + b, as new tensors.

    dL_dz (N, H), a_prev (N, D), W (H, D) -> dL_da_prev (N, D) (None without `input_grad`),
    dL_dW (H, D), dL_db (H,).
    """
    dL_dW = dL_dz.t() @ a_prev                          # (H, D)  sums over the batch
    dL_db = dL_dz.sum(0)                                # (H,)    sums over the batch
    dL_da_prev = dL_dz @ W if input_grad else None      # (N, D)  one row per sample
    return dL_da_prev, dL_dW, dL_db


def linear_backward_into(dL_dz: Tensor, a_prev: Tensor, W: Tensor, dL_dW: Tensor,
                         dL_db: Tensor, input_grad: bool = True) -> Tensor | None:
    """`linear_backward` writing dL/dW into `dL_dW` (H, D) and dL/db into `dL_db` (H,).

    The buffers belong to the caller and must have W's dtype and device, else ValueError
    (nothing is allocated in their place). Returns dL_da_prev (N, D), or None.
    """
    check_buffer(dL_dW, W.shape, W, "dL_dW")
    check_buffer(dL_db, W.shape[:1], W, "dL_db")
    torch.mm(dL_dz.t(), a_prev, out=dL_dW)
    torch.sum(dL_dz, 0, out=dL_db)
    return torch.mm(dL_dz, W) if input_grad else None


def check_buffer(buf: Tensor, shape: torch.Size, like: Tensor, name: str) -> None:
    """Raise ValueError unless `buf` has `shape` and `like`'s dtype and device."""
    if buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        raise ValueError(
            f"{name} buffer is {tuple(buf.shape)} {buf.dtype} on {buf.device}, expected "
            f"{tuple(shape)} {like.dtype} on {like.device}; was the model moved or cast "
            f"after flatten()? flatten it again"
        )


class Layer(NamedTuple):
    """What the backward pass needs of layer l: W_l (H_l, H_{l-1}), its activation, and the
    stored z[l], a[l] (N, H_l)."""

    W: Tensor
    act: Activation
    z: Tensor
    a: Tensor


def backward_layers(dL_da: Tensor, x: Tensor, layers: list[Layer], input_grad: bool = False,
                    ) -> tuple[Tensor | None, Grads]:
    """The equations above, from dL/da[L] (N, H_L) down to layer 1; x = a[0] (N, D).

    Returns dL/dx (N, D) (None unless `input_grad`) and [(dL/dW_l, dL/db_l) for l = 1..L].
    Reads its arguments only.
    """
    grads: Grads = [None] * len(layers)  # type: ignore[list-item]
    for l in range(len(layers), 0, -1):
        W, act, z, a = layers[l - 1]
        a_prev = layers[l - 2].a if l > 1 else x
        dL_dz = act.backward(dL_da, z, a)                                      # (N, H_l)
        dL_da, dL_dW, dL_db = linear_backward(dL_dz, a_prev, W, l > 1 or input_grad)
        grads[l - 1] = (dL_dW, dL_db)
    return dL_da, grads


def model_layers(model: MLP) -> list[Layer]:
    """The `Layer`s of `model`'s last forward, each (N, H_l) even for one 1-D sample."""
    return [Layer(model.weight(l), model.act[l], _batched(model.z[l]), _batched(model.a[l]))
            for l in range(1, model.L + 1)]


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

    The gradients are new tensors, except after `flatten(model)`: then they are written
    into the flat gradient buffer that `model.dL_dw` / `model.dL_db` view (the parameters'
    `.grad`), so clone them to keep a gradient past the next call.
    """
    if accumulate_grad and model.flat is not None:
        raise ValueError("accumulate_grad: after flatten() each .grad is the gradient buffer "
                         "itself, which this call fills; call without accumulate_grad")
    dL_da = get_loss(loss).grad(y_pred, y_true)
    _, grads = backward_layers(_batched(dL_da), _batched(model.a[0]), model_layers(model))
    store_grads(model, grads)
    if accumulate_grad:
        _accumulate_into_grads(model)


def store_grads(model: MLP, grads: Grads) -> None:
    """model.dL_dw[l], model.dL_db[l] = grads[l - 1]; after `flatten`, into its buffers."""
    if model.flat is not None:
        model.flat.write_grads(grads)
        return
    for l, (dL_dW, dL_db) in enumerate(grads, start=1):
        model.dL_dw[l], model.dL_db[l] = dL_dW, dL_db


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
