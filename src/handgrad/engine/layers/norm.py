"""Batch and layer normalisation: x̂ = (x - μ) / √(σ² + ε), out = γ x̂ + β.

Batch norm takes μ, σ² of each feature (channel) over the batch (and the positions of an
image), layer norm of each sample over its features. Both backwards are the compact form of
the same derivation, with m the number of values each μ averages:

    dL/dβ = Σ dout                       dL/dγ = Σ dout ⊙ x̂        (sums over the m values)
    dL/dx̂ = dout ⊙ γ
    dL/dx = (1/σ̂) / m · (m dL/dx̂ - Σ dL/dx̂ - x̂ Σ dL/dx̂ ⊙ x̂)        σ̂ = √(σ² + ε)

In evaluation mode batch norm uses the running statistics, constants: dL/dx = dL/dx̂ / σ̂.
The gradients dict names γ "weight" and β "bias", as torch.nn does.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def batchnorm_forward(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor,
                      running_var: Tensor, training: bool = True, momentum: float = 0.1,
                      eps: float = 1e-5) -> tuple[Tensor, tuple]:
    """Batch norm of x (N, D), or (N, C, H, W) per channel over N, H, W (BatchNorm2d).

    gamma, beta, running_mean, running_var: (D,) or (C,). Training: the batch's μ and biased
    σ², and the running statistics updated in place as torch.nn.BatchNorm1d/2d does
    (r = (1 - momentum) r + momentum s, with the unbiased variance m/(m-1) σ² for
    running_var); evaluation: the running statistics, left unchanged. out: x's shape.
    """
    axes = _channel_axes(x)
    if training:
        m = x.numel() // x.shape[1]
        if m < 2:
            raise ValueError(f"batchnorm in training mode needs more than one value per "
                             f"channel, got input shape {tuple(x.shape)}")
        mu = x.mean(axes, keepdim=True)
        var = x.var(axes, unbiased=False, keepdim=True)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mu.flatten(), alpha=momentum)
            running_var.mul_(1 - momentum).add_(var.flatten() * (m / (m - 1)), alpha=momentum)
    else:
        mu, var = _per_channel(running_mean, x), _per_channel(running_var, x)
    inv_std = (var + eps).rsqrt()
    x_hat = (x - mu) * inv_std
    out = _per_channel(gamma, x) * x_hat + _per_channel(beta, x)
    return out, (x_hat, inv_std, gamma, axes, training)


def batchnorm_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, D) or (N, C, H, W) -> dL/dx (same), {"weight": dL/dγ, "bias": dL/dβ} (D,)."""
    x_hat, inv_std, gamma, axes, training = cache
    dbeta = dout.sum(axes)
    dgamma = (dout * x_hat).sum(axes)
    dx_hat = dout * _per_channel(gamma, dout)
    if not training:                    # μ, σ² the running statistics: constants
        return dx_hat * inv_std, {"weight": dgamma, "bias": dbeta}
    dx = _normalised_input_grad(dx_hat, x_hat, inv_std, axes)
    return dx, {"weight": dgamma, "bias": dbeta}


def layernorm_forward(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5,
                      ) -> tuple[Tensor, tuple]:
    """Layer norm of each sample over its D features (F.layer_norm(x, (D,), ...)).

    x (N, D) (or (..., D)), gamma, beta (D,) -> out, x's shape. The same in training and
    evaluation: no running statistics.
    """
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    inv_std = (var + eps).rsqrt()
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def layernorm_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, dict[str, Tensor]]:
    """dout (N, D) -> dL/dx (N, D), {"weight": dL/dγ (D,), "bias": dL/dβ (D,)}."""
    x_hat, inv_std, gamma = cache
    batch_axes = tuple(range(dout.dim() - 1))
    dbeta = dout.sum(batch_axes)
    dgamma = (dout * x_hat).sum(batch_axes)
    dx_hat = dout * gamma
    dx = _normalised_input_grad(dx_hat, x_hat, inv_std, (-1,))
    return dx, {"weight": dgamma, "bias": dbeta}


def _normalised_input_grad(dx_hat: Tensor, x_hat: Tensor, inv_std: Tensor,
                           axes: tuple[int, ...]) -> Tensor:
    """dL/dx of x̂ = (x - μ) / σ̂ with μ, σ² taken over `axes`: the compact form, m = the
    number of values each μ averages."""
    m = dx_hat.numel() // inv_std.numel()
    return inv_std / m * (m * dx_hat - dx_hat.sum(axes, keepdim=True)
                          - x_hat * (dx_hat * x_hat).sum(axes, keepdim=True))


def _channel_axes(x: Tensor) -> tuple[int, ...]:
    """The axes batch norm averages over: N for (N, D), N, H, W for (N, C, H, W)."""
    if x.dim() == 2:
        return (0,)
    if x.dim() == 4:
        return (0, 2, 3)
    raise ValueError(f"batchnorm takes (N, D) or (N, C, H, W), got shape {tuple(x.shape)}")


def _per_channel(t: Tensor, like: Tensor) -> Tensor:
    """(D,) viewed to broadcast along axis 1 of `like`: (1, D) or (1, C, 1, 1)."""
    return t.view(1, -1, *([1] * (like.dim() - 2)))
