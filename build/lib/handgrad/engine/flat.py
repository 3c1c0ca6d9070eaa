"""One flat buffer for all of a model's parameters, and one for their gradients.

`FlatParams(model)` re-homes every W_l and b_l into one contiguous tensor `θ` (P,), and
every gradient buffer (`model.dL_dw[l]`, `model.dL_db[l]`, also bound to `param.grad`)
into one tensor `g` (P,). An optimizer given the single parameter `θ` (whose `.grad` is
`g`) then updates the whole network in one pass per operation instead of one Python-level
call per tensor: the manual engine's fast path. Its `backward` is backprop.py's equations
with the in-place twins of the pure layer functions, writing straight into `g`; it raises
instead of allocating when a buffer no longer fits the model (moved, cast or re-assigned
after flattening), since a gradient written elsewhere would silently stop the training.

With several torch threads, each weight W_l (H_l, H_{l-1}) is stored transposed, as a
contiguous (H_{l-1}, H_l) block seen through `.t()`: same shape and values, another memory
layout for the three products of a step (a W_lᵀ forward, dL/dzᵀ a for dL/dW, dL/dz W for
dL/da). Measured on the project's 2-core machine (epochs of the exercise's network, batch
64): with 2 threads it is as fast when the host is quiet and 15 % faster when it is busy
(each product splits better between the threads); with 1 thread it is 4-9 % slower, so a
single-threaded process (a sweep worker) keeps nn.Linear's layout, and so does a model on a
GPU, where the thread count says nothing about how a product is split.
"""

from __future__ import annotations

import torch
from torch import nn

from handgrad.engine.backprop import Grads, check_buffer, linear_backward_into
from handgrad.engine.model import MLP

Tensor = torch.Tensor


class FlatParams:
    """θ (P,) and g (P,) of `model`, with per-layer views (W_l, b_l) and (dL/dW_l, dL/db_l).

    transposed: store weights transposed (default: on the CPU when torch uses several
    threads). After construction `model.flat` is this object.
    """

    def __init__(self, model: MLP, transposed: bool | None = None) -> None:
        params = [p for l in range(1, model.L + 1) for p in (model.weight(l), model.bias(l))]
        first = params[0]
        if transposed is None:
            transposed = first.device.type == "cpu" and torch.get_num_threads() > 1
        flat = torch.empty(sum(p.numel() for p in params), dtype=first.dtype,
                           device=first.device)
        grad = torch.zeros_like(flat)
        views, offset = [], 0
        for p in params:
            value, gradient = (_shaped(t, offset, p.shape, transposed) for t in (flat, grad))
            value.copy_(p.detach())
            views.append((value, gradient))
            offset += p.numel()
        self.model = model
        self.grads: Grads = []
        for l in range(1, model.L + 1):
            (w, dw), (b, db) = views[2 * l - 2], views[2 * l - 1]
            model.weight(l).data, model.bias(l).data = w, b
            model.dL_dw[l], model.dL_db[l] = dw, db
            model.weight(l).grad, model.bias(l).grad = dw, db
            self.grads.append((dw, db))
        self.theta = nn.Parameter(flat, requires_grad=True)
        self.theta.grad = grad
        self._params = params
        self._homes = [p.data_ptr() for p in params]
        model.flat = self

    @torch.no_grad()
    def backward(self, dL_da: Tensor) -> None:
        """Write dL/dW_l, dL/db_l of the model's last forward into g, from dL/da[L] (N, H_L),
        which it overwrites (as it does every dL/da and dL/dz below it)."""
        model = self.model
        self.check()
        for l in range(model.L, 0, -1):
            dL_dz = model.act[l].backward_(dL_da, model.z[l], model.a[l])      # (N, H_l)
            dL_dW, dL_db = self.grads[l - 1]
            dL_da = linear_backward_into(dL_dz, model.a[l - 1], self.weight(l), dL_dW,
                                         dL_db, input_grad=l > 1)              # (N, H_{l-1})

    def write_grads(self, grads: Grads) -> None:
        """Copy [(dL/dW_l, dL/db_l)] into g; ValueError when one does not fit its view."""
        self.check()
        for (dL_dW, dL_db), (W_buf, b_buf) in zip(grads, self.grads, strict=True):
            check_buffer(W_buf, dL_dW.shape, dL_dW, "dL_dW")
            check_buffer(b_buf, dL_db.shape, dL_db, "dL_db")
            W_buf.copy_(dL_dW)
            b_buf.copy_(dL_db)

    def check(self) -> None:
        """Raise ValueError unless every parameter still lives in θ (a few pointer compares:
        the per-step price of never training a copy that the optimizer does not see)."""
        if [p.data_ptr() for p in self._params] != self._homes:
            raise ValueError(_MOVED)

    def weight(self, l: int) -> Tensor:
        """The model's W_l, checked to be the one in θ (not a replaced Parameter)."""
        W = self.model.weight(l)
        if W.data_ptr() != self._homes[2 * l - 2]:
            raise ValueError(_MOVED)
        return W


_MOVED = ("the model's parameters no longer live in the flat buffer (moved, cast or "
          "re-assigned after flatten()); flatten it again")


def flatten(model: MLP, transposed: bool | None = None) -> nn.Parameter:
    """Re-home every parameter of `model` into one buffer (see `FlatParams`); returns θ as a
    Parameter whose `.grad` is the flat gradient buffer."""
    return FlatParams(model, transposed).theta


def _shaped(buffer: Tensor, offset: int, shape: torch.Size, transposed: bool) -> Tensor:
    """A view of buffer[offset:] with `shape`; with `transposed`, a matrix (out, in) is
    stored as (in, out)."""
    block = buffer[offset:offset + shape.numel()]
    if transposed and len(shape) == 2:
        return block.view(shape[1], shape[0]).t()
    return block.view(shape)
