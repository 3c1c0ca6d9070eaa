"""An element-wise activation a = f(z) in the layer form, over activations.py (one
derivative per activation, written once)."""

from __future__ import annotations

import torch

from handgrad.engine.activations import get_activation

Tensor = torch.Tensor


def activation_forward(z: Tensor, name: str) -> tuple[Tensor, tuple]:
    """a = f(z), element-wise: z of any shape, e.g. (N, H) or (N, C, H, W) -> a, same shape."""
    act = get_activation(name)
    a = act.f(z)
    return a, (act, z, a)


def activation_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dL/dz = dL/da ⊙ f'(z), same shape as z; no parameters."""
    act, z, a = cache
    return act.backward(dout, z, a), {}
