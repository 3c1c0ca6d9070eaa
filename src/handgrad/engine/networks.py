"""The networks of `handgrad train --model`, built of engine/layers as a `Sequential`.

- `cnn`: images (N, C, H, W) through conv-ReLU-maxpool twice (CNN_CHANNELS filters of 3×3,
  padding 1, 2×2 pools), flattened, then the MLP head `hidden` → classes;
- `mlp-bn`: the exercise's MLP with batch norm and dropout after every hidden affine layer
  (affine → batch norm → activation → dropout), then the output affine layer.

Weights are initialised as torch.nn does, from torch's global generator (seed it first).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from handgrad.engine.sequential import (
    Activation,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Sequential,
    Unflatten,
)

MODELS = ("mlp", "cnn", "mlp-bn")  # "mlp": engine/model.py's MLP, the exercise's contract
CNN_CHANNELS = (8, 16)
DROPOUT_P = 0.2


def cnn(image_shape: Sequence[int], hidden: Sequence[int], num_classes: int,
        activation: str = "relu", dtype: torch.dtype | None = None) -> Sequential:
    """(N, C·H·W) rows of pixels -> (N, num_classes) scores; H and W divisible by 4."""
    C, H, W = image_shape
    if H % 4 or W % 4:
        raise ValueError(f"cnn: the two 2x2 pools need images whose sides divide by 4, got "
                         f"{H}x{W}")
    layers: list[Layer] = [Unflatten(image_shape)]
    for c_in, c_out in zip((C, *CNN_CHANNELS), CNN_CHANNELS, strict=False):
        layers += [Conv2d(c_in, c_out, 3, padding=1, dtype=dtype), Activation(activation),
                   MaxPool2d(2)]
    layers.append(Flatten())
    widths = [CNN_CHANNELS[-1] * (H // 4) * (W // 4), *hidden, num_classes]
    layers += _head(widths, activation, dtype)
    return Sequential(layers, [C * H * W, *hidden, num_classes], activation)


def mlp_bn(D: int, hidden: Sequence[int], num_classes: int, activation: str = "relu",
           dropout: float = DROPOUT_P, seed: int = 0, dtype: torch.dtype | None = None,
           ) -> Sequential:
    """(N, D) -> (N, num_classes); hidden layer l's dropout masks come from seed + l."""
    widths = [D, *hidden, num_classes]
    layers: list[Layer] = []
    for l, (d_in, d_out) in enumerate(zip(widths[:-2], widths[1:-1], strict=True), start=1):
        layers += [Linear(d_in, d_out, dtype=dtype), BatchNorm(d_out, dtype=dtype),
                   Activation(activation), Dropout(dropout, seed + l)]
    layers.append(Linear(widths[-2], widths[-1], dtype=dtype))
    return Sequential(layers, widths, activation)


def build_network(model: str, image_shape: Sequence[int], hidden: Sequence[int],
                  num_classes: int, activation: str = "relu", seed: int = 0,
                  dtype: torch.dtype | None = None) -> Sequential:
    """The network called `model` ("cnn" or "mlp-bn") for images of `image_shape` (C, H, W)."""
    if model == "cnn":
        return cnn(image_shape, hidden, num_classes, activation, dtype)
    if model == "mlp-bn":
        D = image_shape[0] * image_shape[1] * image_shape[2]
        return mlp_bn(D, hidden, num_classes, activation, seed=seed, dtype=dtype)
    raise ValueError(f"unknown model {model!r}; choose from: {', '.join(MODELS[1:])}")


def _head(widths: Sequence[int], activation: str, dtype) -> list[Layer]:
    """Affine layers widths[0] -> … -> widths[-1], the activation between them."""
    layers: list[Layer] = []
    for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [Linear(d_in, d_out, dtype=dtype), Activation(activation)]
    return layers[:-1]
