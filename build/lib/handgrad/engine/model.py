"""`MLP`: a multilayer perceptron that keeps every pre-activation `z` and activation `a`.

The contract of the classic exercise, which a student's `backpropagation(model, y_true,
y_pred)` is written against:

- `model.L`: number of layers; `model.fc`: `nn.ModuleDict` with keys "1" … str(L);
- `model.f[l]`, `model.df[l]` (l = 1..L): activation of layer l and its derivative da/dz;
- after `model(x)`: `model.a[0] = x`, `model.z[l] = a[l-1] W_lᵀ + b_l`, `model.a[l] = f_l(z[l])`;
- `model.dL_dw[l]`, `model.dL_db[l]`: filled by the backward pass, shaped like
  `fc[str(l)].weight` (H_l, H_{l-1}) and `.bias` (H_l,);
- `model.flat`: None, or after `flatten(model)` the `FlatParams` whose buffers hold every
  parameter and gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from handgrad.engine.activations import Activation, get_activation

Tensor = torch.Tensor


class MLP(nn.Module):
    """Fully connected network `sizes[0] -> sizes[1] -> … -> sizes[L]`.

    Hidden layers use `activation`, the last layer `out_activation` (identity by default, so
    the output is logits for the cross-entropy losses). Weights are initialised as
    `nn.Linear` does, from torch's global generator (seed it for reproducible weights).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        out_activation: str = "identity",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
        self.sizes = sizes
        self.activation = activation
        self.out_activation = out_activation
        self.L = len(sizes) - 1
        self.fc = nn.ModuleDict(
            {
                str(l): nn.Linear(sizes[l - 1], sizes[l], dtype=dtype, device=device)
                for l in range(1, self.L + 1)
            }
        )
        hidden, out = get_activation(activation), get_activation(out_activation)
        self.act: dict[int, Activation] = {
            l: (out if l == self.L else hidden) for l in range(1, self.L + 1)
        }
        self.f = {l: act.f for l, act in self.act.items()}
        self.df = {l: act.df for l, act in self.act.items()}
        self.z: dict[int, Tensor] = {}
        self.a: dict[int, Tensor] = {}
        self.dL_dw: dict[int, Tensor] = {}
        self.dL_db: dict[int, Tensor] = {}
        self.flat = None  # after flatten(): the FlatParams that own W, b, dL_dw, dL_db

    def forward(self, x: Tensor) -> Tensor:
        """a[L] for x of shape (N, D) or (D,); keeps z[l] and a[l] for every layer."""
        if x.dim() not in (1, 2) or x.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"input must be (N, {self.sizes[0]}) or ({self.sizes[0]},), "
                f"got shape {tuple(x.shape)}"
            )
        self.a[0] = x
        for l in range(1, self.L + 1):
            self.z[l] = F.linear(self.a[l - 1], self.weight(l), self.bias(l))  # one addmm
            self.a[l] = self.f[l](self.z[l])
        return self.a[self.L]

    def weight(self, l: int) -> Tensor:
        """W_l, shape (H_l, H_{l-1})."""
        return self.fc._modules[str(l)].weight

    def bias(self, l: int) -> Tensor:
        """b_l, shape (H_l,)."""
        return self.fc._modules[str(l)].bias

    def params_by_layer(self) -> list[tuple[Tensor, Tensor]]:
        """[(W_l, b_l) for l = 1..L]: (H_l, H_{l-1}) and (H_l,)."""
        return [(self.weight(l), self.bias(l)) for l in range(1, self.L + 1)]

    def copy_as(self, dtype: torch.dtype) -> MLP:
        """A new MLP with the same architecture and weights, in `dtype` (no stored z, a)."""
        twin = MLP(self.sizes, self.activation, self.out_activation, dtype=dtype,
                   device=self.weight(1).device)
        twin.load_state_dict({k: v.to(dtype) for k, v in self.state_dict().items()})
        return twin

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation!r}, out={self.out_activation!r}"
