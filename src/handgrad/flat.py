"""One flat buffer for all of a model's parameters, and one for their gradients.

After `flatten(model)`, every W_l and b_l is a view into one contiguous tensor `θ` (P,), and
every gradient buffer the backward pass writes (`model.dL_dw[l]`, `model.dL_db[l]`, bound to
`param.grad`) is a view into one tensor `g` (P,). An optimizer given the single parameter
`θ` (whose `.grad` is `g`) then updates the whole network in one pass per operation instead
of one Python-level call per tensor: the manual engine's fast path.
"""

from __future__ import annotations

import torch
from torch import nn

from handgrad.model import MLP


def flatten(model: MLP) -> nn.Parameter:
    """Re-home every parameter of `model` into one buffer; returns it as a Parameter whose
    `.grad` is the flat gradient buffer, with `model.dL_dw` / `model.dL_db` views into it."""
    params = [p for l in range(1, model.L + 1) for p in (model.weight(l), model.bias(l))]
    first = params[0]
    flat = torch.empty(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    offset = 0
    views = []
    for p in params:
        n = p.numel()
        flat[offset:offset + n].copy_(p.detach().reshape(-1))
        views.append((flat[offset:offset + n].view_as(p), grad[offset:offset + n].view_as(p)))
        offset += n
    for l in range(1, model.L + 1):
        (w, dw), (b, db) = views[2 * l - 2], views[2 * l - 1]
        model.weight(l).data, model.bias(l).data = w, b
        model.dL_dw[l], model.dL_db[l] = dw, db
        model.weight(l).grad, model.bias(l).grad = dw, db
    theta = nn.Parameter(flat, requires_grad=True)
    theta.grad = grad
    return theta
