"""Element-wise activations, each a forward `f(z)` with its derivative `df(z) = da/dz`.

Every activation maps a pre-activation `z` of any shape, e.g. `(N, H)`, to `a` of the same
shape. `backward(dL_da, z, a)` is the pure backward, `dL_dz = dL_da ⊙ f'(z)` as a new tensor;
`backward_(dL_da, z, a)` is the same math written over `dL_da`, for the training path that
owns that buffer (that is what makes ReLU's mask free). Where autograd has its own formula
(sigmoid, tanh), `backward` uses the same one, so the two agree to the last bit.

Conventions at kinks follow autograd: ReLU's derivative at exactly `z = 0` is 0, and leaky
ReLU's is the negative slope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """An activation `a = f(z)` and its derivative `df(z)`, both `(N, H) -> (N, H)`."""

    name: str
    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]

    def backward(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """dL/dz = dL/da ⊙ f'(z). dL_da, z, a: (N, H) -> dL_dz (N, H), a new tensor."""
        return dL_da * self.df(z)

    def backward_(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """`backward` written over `dL_da` (N, H), which it returns."""
        return dL_da.mul_(self.df(z))


@dataclass(frozen=True)
class _ReLU(Activation):
    """Since a = max(z, 0) >= 0, the mask 1[z > 0] is sign(a): one cheap float pass instead
    of a boolean mask (6× faster on CPU), and exact (a product by 0 or 1)."""

    def backward(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """dL/dz = dL/da ⊙ 1[z > 0] = dL/da ⊙ sign(a). (N, H) -> (N, H)."""
        return dL_da * a.sign()

    def backward_(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        return dL_da.mul_(a.sign())


@dataclass(frozen=True)
class _Sigmoid(Activation):
    def backward(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """dL/dz = dL/da ⊙ (1 - a) ⊙ a, from the stored activation. (N, H) -> (N, H)."""
        return dL_da * (1 - a) * a

    def backward_(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        return dL_da.mul_(1 - a).mul_(a)


@dataclass(frozen=True)
class _Tanh(Activation):
    def backward(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """dL/dz = dL/da ⊙ (1 - a²), from the stored activation. (N, H) -> (N, H)."""
        return dL_da * (1 - a * a)

    def backward_(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        return dL_da.mul_(1 - a * a)


@dataclass(frozen=True)
class _Identity(Activation):
    def backward(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        """dL/dz = dL/da (a copy, so that the result never aliases the input)."""
        return dL_da.clone()

    def backward_(self, dL_da: Tensor, z: Tensor, a: Tensor) -> Tensor:
        return dL_da


def _relu_df(z: Tensor) -> Tensor:
    return (z > 0).to(z.dtype)


def _leaky_relu_df(z: Tensor) -> Tensor:
    return torch.ones_like(z).masked_fill_(z <= 0, LEAKY_SLOPE)


def _sigmoid_df(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def _tanh_df(z: Tensor) -> Tensor:
    return 1 - torch.tanh(z) ** 2


def _elu_df(z: Tensor) -> Tensor:
    return torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0)))


def _softplus_df(z: Tensor) -> Tensor:
    return torch.sigmoid(z)


ACTIVATIONS: dict[str, Activation] = {
    "relu": _ReLU("relu", torch.relu, _relu_df),
    "leaky_relu": Activation(
        "leaky_relu", lambda z: F.leaky_relu(z, LEAKY_SLOPE), _leaky_relu_df
    ),
    "sigmoid": _Sigmoid("sigmoid", torch.sigmoid, _sigmoid_df),
    "tanh": _Tanh("tanh", torch.tanh, _tanh_df),
    "identity": _Identity("identity", lambda z: z, torch.ones_like),
    "elu": Activation("elu", F.elu, _elu_df),
    "softplus": Activation("softplus", F.softplus, _softplus_df),
}


def get_activation(name: str) -> Activation:
    """The activation called `name`; a ValueError lists the valid names otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose from: {', '.join(ACTIVATIONS)}"
        ) from None
