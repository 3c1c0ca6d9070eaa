"""Layers written by hand in the CS231n form: for each, a pure `*_forward(x, params..., ...)
-> (out, cache)` and a `*_backward(dout, cache) -> (dx, grads)` (grads: a dict named like the
parameters, empty for a layer without any). Each backward reads like its equations in
docs/backprop.md and is proven against autograd and torch.nn in tests/engine/test_layers_*.

Shapes use one set of letters: N batch, D features, C channels (or classes, for a loss),
F filters (output channels), H, W height and width, HH, WW a kernel's, H', W' an output's.
"""

from handgrad.engine.layers.activation import activation_backward, activation_forward
from handgrad.engine.layers.affine import affine_backward, affine_forward
from handgrad.engine.layers.conv import conv2d_backward, conv2d_forward
from handgrad.engine.layers.dropout import dropout_backward, dropout_forward
from handgrad.engine.layers.flatten import flatten_backward, flatten_forward
from handgrad.engine.layers.norm import (
    batchnorm_backward,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
)
from handgrad.engine.layers.pool import maxpool2d_backward, maxpool2d_forward
from handgrad.engine.layers.softmax import (
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

__all__ = [
    "activation_backward",
    "activation_forward",
    "affine_backward",
    "affine_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "dropout_backward",
    "dropout_forward",
    "flatten_backward",
    "flatten_forward",
    "layernorm_backward",
    "layernorm_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
]
