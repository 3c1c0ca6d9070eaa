"""`Sequential`: a network of the hand-written layers (engine/layers), trained by either engine.

Each layer module holds its parameters (and batch norm's running statistics) under
torch.nn's names (`weight`, `bias`, `running_mean`, ...), so a state dict loads into the
matching torch.nn modules. `forward(x)` calls the layer's pure `*_forward` and keeps its
cache; `backward(dout)` calls the pure `*_backward` on that cache, sets every parameter's
`.grad` to its gradient and returns dL/dx. The two engines share the forward:

- manual:   y = net(x) under no_grad, then `net.backward(dL/dy)` and a handgrad optimizer;
- autograd: y = net(x), `loss.backward()` through the same forward, and torch.optim.

`net.train()` / `net.eval()` switch batch norm and dropout as in torch.nn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from handgrad.engine.layers import (
    activation_backward,
    activation_forward,
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    conv2d_backward,
    conv2d_forward,
    dropout_backward,
    dropout_forward,
    flatten_backward,
    flatten_forward,
    layernorm_backward,
    layernorm_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

Tensor = torch.Tensor
NO_FORWARD = object()  # a Layer's cache before its first forward (None is a cache: dropout's)


class Layer(nn.Module):
    """A hand-written layer: `layer_forward(x) -> (out, cache)` and the pure
    `layer_backward(dout, cache) -> (dx, grads)` it wraps."""

    layer_backward: Callable[..., tuple[Tensor | None, dict[str, Tensor]]]  # per layer
    skips_input_grad = False  # True: layer_backward takes input_grad (affine, conv2d)

    def __init__(self) -> None:
        super().__init__()
        self.cache: object = NO_FORWARD

    def layer_forward(self, x: Tensor) -> tuple[Tensor, object]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out, self.cache = self.layer_forward(x)
        return out

    def torch_module(self) -> nn.Module:
        """The torch.nn module that computes the same (state dict names alike)."""
        raise NotImplementedError

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/dx from dL/dout of the last forward; each parameter's .grad = its gradient.
        input_grad=False: dL/dx may be skipped (None) where the layer can skip it."""
        if self.cache is NO_FORWARD:
            raise RuntimeError(f"{type(self).__name__}.backward before any forward")
        if self.skips_input_grad:
            dx, grads = self.layer_backward(dout, self.cache, input_grad)
        else:
            dx, grads = self.layer_backward(dout, self.cache)
        for name, grad in grads.items():
            getattr(self, name).grad = grad
        return dx


class Linear(Layer):
    """z = x Wᵀ + b: (N, D) -> (N, H), initialised as nn.Linear."""

    layer_backward = staticmethod(affine_backward)
    skips_input_grad = True

    def __init__(self, D: int, H: int, dtype=None, device=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(H, D, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.empty(H, dtype=dtype, device=device))
        init_like_torch(self.weight, self.bias)

    def layer_forward(self, x: Tensor):
        return affine_forward(x, self.weight, self.bias)

    def torch_module(self) -> nn.Module:
        return nn.Linear(self.weight.shape[1], self.weight.shape[0], dtype=self.weight.dtype)


class Activation(Layer):
    """a = f(z), element-wise (engine/activations.py's names)."""

    layer_backward = staticmethod(activation_backward)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def layer_forward(self, x: Tensor):
        return activation_forward(x, self.name)

    def torch_module(self) -> nn.Module:
        return TORCH_ACTIVATIONS[self.name]()

    def extra_repr(self) -> str:
        return self.name


class Conv2d(Layer):
    """(N, C, H, W) -> (N, F, H', W'), initialised as nn.Conv2d. Its backward writes the
    input's columns into one buffer kept from step to step (`workspace`)."""

    skips_input_grad = True

    def __init__(self, C: int, F: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dtype=None, device=None) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(F, C, k, k, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.empty(F, dtype=dtype, device=device))
        init_like_torch(self.weight, self.bias)
        self.workspace: dict[str, Tensor] = {}

    def layer_forward(self, x: Tensor):
        return conv2d_forward(x, self.weight, self.bias, self.stride, self.padding)

    def layer_backward(self, dout: Tensor, cache: tuple, input_grad: bool = True):
        return conv2d_backward(dout, cache, input_grad, self.workspace)

    def torch_module(self) -> nn.Module:
        F, C, k, _ = self.weight.shape
        return nn.Conv2d(C, F, k, self.stride, self.padding, dtype=self.weight.dtype)


class MaxPool2d(Layer):
    """(N, C, H, W) -> (N, C, H', W'), the max of each window."""

    layer_backward = staticmethod(maxpool2d_backward)

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def layer_forward(self, x: Tensor):
        return maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)

    def torch_module(self) -> nn.Module:
        return nn.MaxPool2d(self.kernel_size, self.stride, self.padding)


class BatchNorm(Layer):
    """Batch norm of (N, D) or (N, C, H, W), with nn.BatchNorm1d/2d's parameters, buffers
    and defaults (γ = 1, β = 0, running mean 0 and variance 1, momentum 0.1, eps 1e-5)."""

    layer_backward = staticmethod(batchnorm_backward)

    def __init__(self, D: int, momentum: float = 0.1, eps: float = 1e-5, dtype=None,
                 device=None) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(D, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(D, dtype=dtype, device=device))
        self.register_buffer("running_mean", torch.zeros(D, dtype=dtype, device=device))
        self.register_buffer("running_var", torch.ones(D, dtype=dtype, device=device))
        self.register_buffer("num_batches_tracked", torch.tensor(0, device=device))

    def layer_forward(self, x: Tensor):
        if self.training:
            self.num_batches_tracked.add_(1)
        return batchnorm_forward(x, self.weight, self.bias, self.running_mean,
                                 self.running_var, self.training, self.momentum, self.eps)

    def torch_module(self) -> nn.Module:
        """nn.BatchNorm1d (nn.BatchNorm2d takes the same state for images: swap it in)."""
        return nn.BatchNorm1d(self.weight.shape[0], self.eps, self.momentum,
                              dtype=self.weight.dtype)


class LayerNorm(Layer):
    """Layer norm of each sample of (N, D) over its D features (nn.LayerNorm((D,)))."""

    layer_backward = staticmethod(layernorm_backward)

    def __init__(self, D: int, eps: float = 1e-5, dtype=None, device=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(D, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(D, dtype=dtype, device=device))

    def layer_forward(self, x: Tensor):
        return layernorm_forward(x, self.weight, self.bias, self.eps)

    def torch_module(self) -> nn.Module:
        return nn.LayerNorm(self.weight.shape[0], self.eps, dtype=self.weight.dtype)


class Dropout(Layer):
    """Inverted dropout with probability p, its masks from a generator seeded with `seed`
    (one per device, created on first use): two networks seeded alike drop alike."""

    layer_backward = staticmethod(dropout_backward)

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout p must be in [0, 1], got {p}")
        self.p, self.seed = p, seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def reseed(self) -> None:
        """Start the masks again from `seed`: the next forward drops as the first did."""
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self._generators[device]

    def layer_forward(self, x: Tensor):
        return dropout_forward(x, self.p, self.training, self.generator(x.device))

    def torch_module(self) -> nn.Module:
        """nn.Dropout: the same scaling, its masks from torch's global generator."""
        return nn.Dropout(self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W)."""

    layer_backward = staticmethod(flatten_backward)

    def layer_forward(self, x: Tensor):
        return flatten_forward(x)

    def torch_module(self) -> nn.Module:
        return nn.Flatten()


class Unflatten(Layer):
    """(N, C·H·W) -> (N, C, H, W): rows of pixels back into images; its backward flattens
    the gradient again (flatten_backward reshapes to the cached input shape)."""

    layer_backward = staticmethod(flatten_backward)

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def layer_forward(self, x: Tensor):
        return x.reshape(x.shape[0], *self.shape), x.shape

    def torch_module(self) -> nn.Module:
        return nn.Unflatten(1, self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Sequential(nn.Module):
    """layers[0] -> layers[1] -> …, each a `Layer`.

    sizes: [D, fully connected widths…, C], what a run directory records of the network
    (D inputs, C outputs); activation: the name of its hidden activation."""

    def __init__(self, layers: Sequence[Layer], sizes: Sequence[int], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sizes = [int(s) for s in sizes]
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """x (N, D) -> y (N, C), every layer keeping its cache."""
        if x.dim() != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"input must be (N, {self.sizes[0]}), got shape {tuple(x.shape)}")
        for layer in self.layers:
            x = layer(x)
        return x

    def to_torch(self) -> nn.Sequential:
        """The same network as torch.nn modules, with these weights and running statistics
        (dropout draws its masks from torch's generator there)."""
        twin = nn.Sequential(*(layer.torch_module() for layer in self.layers))
        twin.load_state_dict({k.removeprefix("layers."): v for k, v in self.state_dict().items()})
        return twin.to(next(self.parameters()).device).train(self.training)

    @torch.no_grad()
    def backward(self, dL_dy: Tensor, input_grad: bool = False) -> Tensor | None:
        """From dL/dy (N, C) down, setting .grad of every parameter. Below the first layer
        with parameters nothing is needed for training: dL/dx (N, D) is computed, and
        returned, only with `input_grad` (else None)."""
        first = min((i for i, layer in enumerate(self.layers)
                     if next(layer.parameters(), None) is not None), default=0)
        stop = 0 if input_grad else first
        for i in range(len(self.layers) - 1, stop - 1, -1):
            dL_dy = self.layers[i].backward(dL_dy, input_grad=input_grad or i > first)
        return dL_dy if input_grad else None


TORCH_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
                     "tanh": nn.Tanh, "identity": nn.Identity, "elu": nn.ELU,
                     "softplus": nn.Softplus}


def init_like_torch(weight: Tensor, bias: Tensor) -> None:
    """nn.Linear's and nn.Conv2d's initialisation (reset_parameters), from torch's global
    generator: W ~ kaiming_uniform(a=√5), b ~ U(-1/√fan_in, 1/√fan_in)."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)
