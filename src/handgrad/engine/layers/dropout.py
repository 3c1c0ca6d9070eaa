"""Inverted dropout: in training each value is kept with probability 1 - p and scaled by
1 / (1 - p), so that evaluation (the identity) needs no rescaling.

    mask = 1[u ≥ p] / (1 - p),  u ~ U[0, 1) from a seeded torch.Generator
    out = x ⊙ mask                dL/dx = dout ⊙ mask

The mask comes from the caller's generator, not torch's global one: two engines given
generators seeded alike drop the same values.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def dropout_forward(x: Tensor, p: float, training: bool = True,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """x (N, D) or any shape -> out, same shape. p: the probability of dropping a value.

    generator: on x's device (torch's default generator when None). In evaluation mode, or
    with p = 0, out is x itself and the cache None."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x, None
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    keep = (u >= p).to(x.dtype)
    mask = keep / (1 - p) if p < 1 else keep
    return x * mask, mask


def dropout_backward(dout: Tensor, cache: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    """dL/dx = dout ⊙ mask (the identity in evaluation mode); no parameters."""
    mask = cache
    if mask is None:
        return dout, {}
    return dout * mask, {}
