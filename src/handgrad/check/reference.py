"""The oracle every check compares with, and the random problems the checks run on.

- `autograd_reference(model, x, y_true, loss)`: [(dL/dW_l, dL/db_l) for l = 1..L] by torch
  autograd on the loss's own torch formula (`Loss.torch_value`).
- `random_problem(sizes, …)`: a seeded MLP, a batch x (N, D) (or one sample (D,)) and targets
  that suit the loss; with `model="cnn"` or `"mlp-bn"` (and `image_shape`) the `Sequential`
  of engine/networks.py instead, its x the rows of images (N, C·H·W). The MLP's weights
  come from a local generator with `nn.Linear`'s distribution, U(±1/√H_{l-1}), so building
  its problem never touches torch's global seed; a network of layers initialises as
  torch.nn does, from the global generator seeded with `seed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP
from handgrad.engine.networks import build_network
from handgrad.engine.sequential import Sequential

Tensor = torch.Tensor


def autograd_reference(model: MLP, x: Tensor, y_true: Tensor,
                       loss: str) -> list[tuple[Tensor, Tensor]]:
    """[(dL/dW_l (H_l, H_{l-1}), dL/db_l (H_l,)) for l = 1..L] by autograd, for x (N, D) or
    (D,). Runs model(x), so it leaves the model's z and a of this batch."""
    params = [p for pair in model.params_by_layer() for p in pair]
    with torch.enable_grad():
        value = get_loss(loss).torch_value(model(x), y_true)
        grads = torch.autograd.grad(value, params)
    return [(grads[2 * i], grads[2 * i + 1]) for i in range(model.L)]


def random_targets(loss: str, N: int, C: int, gen: torch.Generator,
                   dtype: torch.dtype) -> Tensor:
    """Targets (N, C) that suit `loss`: one-hot classes for the cross-entropies, else
    standard normal values."""
    if loss in ("cross_entropy", "bce_with_logits"):
        return F.one_hot(torch.randint(0, C, (N,), generator=gen), C).to(dtype)
    return torch.randn(N, C, generator=gen, dtype=dtype)


@dataclass
class Problem:
    """A network, its input x (N, D) or (D,), and targets y_true shaped like model(x)."""

    model: MLP | Sequential
    x: Tensor
    y_true: Tensor
    loss: str


def random_problem(sizes: list[int], activation: str = "relu", loss: str = "sse",
                   batch: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64,
                   out_activation: str = "identity", single: bool = False,
                   model: str = "mlp", image_shape: tuple[int, int, int] | None = None,
                   ) -> Problem:
    """A seeded random problem: x ~ N(0, 1) of shape (batch, D), or (D,) when `single`.
    sizes = [D, hidden…, C]; for a network of layers D must be C·H·W of `image_shape`."""
    loss = get_loss(loss).name
    gen = torch.Generator().manual_seed(seed)
    if model == "mlp":
        net = _random_mlp(sizes, activation, out_activation, dtype, gen)
    else:
        if image_shape is None or math.prod(image_shape) != sizes[0]:
            raise ValueError(f"model {model!r} needs an image_shape of {sizes[0]} values "
                             f"(sizes[0]), got {image_shape}")
        torch.manual_seed(seed)  # the layers initialise as torch.nn does
        net = build_network(model, image_shape, sizes[1:-1], sizes[-1], activation, seed,
                            dtype)
    n = 1 if single else batch
    x = torch.randn(n, sizes[0], generator=gen, dtype=dtype)
    y_true = random_targets(loss, n, sizes[-1], gen, dtype)
    if single:
        x, y_true = x[0], y_true[0]
    return Problem(net, x, y_true, loss)


def _random_mlp(sizes: list[int], activation: str, out_activation: str, dtype: torch.dtype,
                gen: torch.Generator) -> MLP:
    model = MLP(sizes, activation=activation, out_activation=out_activation, dtype=dtype)
    with torch.no_grad():
        for W, b in model.params_by_layer():
            bound = 1 / math.sqrt(W.shape[1])
            W.copy_(torch.rand(W.shape, generator=gen, dtype=dtype) * 2 * bound - bound)
            b.copy_(torch.rand(b.shape, generator=gen, dtype=dtype) * 2 * bound - bound)
    return model
