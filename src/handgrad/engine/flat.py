"""One flat buffer for all of a model's parameters, and one for their gradients.

After `flatten(model)`, every W_l and b_l is a view into one contiguous tensor `θ` (P,), and
every gradient buffer the backward pass writes (`model.dL_dw[l]`, `model.dL_db[l]`, bound to
`param.grad`) is a view into one tensor `g` (P,). An optimizer given the single parameter
`θ` (whose `.grad` is `g`) then updates the whole network in one pass per operation instead
of one Python-level call per tensor: the manual engine's fast path.

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

from handgrad.engine.model import MLP


def flatten(model: MLP, transposed: bool | None = None) -> nn.Parameter:
    """Re-home every parameter of `model` into one buffer; returns it as a Parameter whose
    `.grad` is the flat gradient buffer, with `model.dL_dw` / `model.dL_db` views into it.
    transposed: store weights transposed (default: on the CPU when torch uses several
    threads)."""
    params = [p for l in range(1, model.L + 1) for p in (model.weight(l), model.bias(l))]
    first = params[0]
    if transposed is None:
        transposed = first.device.type == "cpu" and torch.get_num_threads() > 1
    flat = torch.empty(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    offset = 0
    views = []
    for p in params:
        n = p.numel()
        value = _shaped(flat, offset, p.shape, transposed)
        gradient = _shaped(grad, offset, p.shape, transposed)
        value.copy_(p.detach())
        views.append((value, gradient))
        offset += n
    for l in range(1, model.L + 1):
        (w, dw), (b, db) = views[2 * l - 2], views[2 * l - 1]
        model.weight(l).data, model.bias(l).data = w, b
        model.dL_dw[l], model.dL_db[l] = dw, db
        model.weight(l).grad, model.bias(l).grad = dw, db
    theta = nn.Parameter(flat, requires_grad=True)
    theta.grad = grad
    return theta


def _shaped(buffer: torch.Tensor, offset: int, shape: torch.Size,
            transposed: bool) -> torch.Tensor:
    """A view of buffer[offset:] with `shape`; with `transposed`, a matrix (out, in) is
    stored as (in, out)."""
    block = buffer[offset:offset + shape.numel()]
    if transposed and len(shape) == 2:
        return block.view(shape[1], shape[0]).t()
    return block.view(shape)
