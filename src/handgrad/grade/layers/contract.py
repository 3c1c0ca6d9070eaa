"""What the layers assignment asks for: the functions, their layers, their outputs and their
points (the signatures are written out in docs/grading.md).

Every layer is a pair in CS231n's form, `forward(inputs..., param) -> (out, cache)` and
`backward(dout, cache) -> grads`; `softmax_loss(x, y) -> (loss, dx)` is one function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One layer of the assignment: its functions and what each returns."""

    name: str
    forward: str | None  # None for softmax_loss (one function, no cache)
    backward: str
    grads: tuple[str, ...]  # what backward returns, in order


LAYERS = (
    Layer("affine", "affine_forward", "affine_backward", ("dx", "dw", "db")),
    Layer("relu", "relu_forward", "relu_backward", ("dx",)),
    Layer("batchnorm", "batchnorm_forward", "batchnorm_backward", ("dx", "dgamma", "dbeta")),
    Layer("layernorm", "layernorm_forward", "layernorm_backward", ("dx", "dgamma", "dbeta")),
    Layer("dropout", "dropout_forward", "dropout_backward", ("dx",)),
    Layer("conv", "conv_forward", "conv_backward", ("dx", "dw", "db")),
    Layer("max_pool", "max_pool_forward", "max_pool_backward", ("dx",)),
    Layer("softmax_loss", None, "softmax_loss", ("loss", "dx")),
)
BY_NAME = {layer.name: layer for layer in LAYERS}

POINTS = {  # per function; 100 in all
    "affine_forward": 3, "affine_backward": 7,
    "relu_forward": 1, "relu_backward": 4,
    "batchnorm_forward": 5, "batchnorm_backward": 15,
    "layernorm_forward": 3, "layernorm_backward": 7,
    "dropout_forward": 2, "dropout_backward": 3,
    "conv_forward": 5, "conv_backward": 15,
    "max_pool_forward": 3, "max_pool_backward": 7,
    "softmax_loss": 20,
}
FUNCTIONS = tuple(POINTS)


def layer_of(function: str) -> Layer:
    """The layer a function belongs to."""
    return next(layer for layer in LAYERS if function in (layer.forward, layer.backward))


def parse_functions(functions: str | Iterable[str] | None) -> tuple[str, ...]:
    """The functions to grade, in the assignment's order: all of them for None, else the
    given names ("a,b" or a list), each checked (ValueError naming an unknown one)."""
    if functions is None:
        return FUNCTIONS
    names = functions.split(",") if isinstance(functions, str) else list(functions)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("functions must name at least one function")
    for name in names:
        if name not in POINTS:
            raise ValueError(f"unknown function {name!r}; choose from: {', '.join(FUNCTIONS)}")
    return tuple(f for f in FUNCTIONS if f in names)
