"""affine, activation and flatten layers against F.linear, the activations and reshape under
autograd in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.layers import (
    activation_backward,
    activation_forward,
    affine_backward,
    affine_forward,
    flatten_backward,
    flatten_forward,
)
from support import TOL, activations, autograd_vjp, f64, scaled_err, seeds


@settings(max_examples=30)
@given(st.integers(1, 12), st.integers(1, 10), st.integers(1, 10), activations, seeds)
def test_affine_and_activation_match_autograd(N, D, H, name, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=gen, dtype=f64)
    W, b = torch.randn(H, D, generator=gen, dtype=f64), torch.randn(H, generator=gen, dtype=f64)
    dout = torch.randn(N, H, generator=gen, dtype=f64)
    z, affine_cache = affine_forward(x, W, b)
    a, act_cache = activation_forward(z, name)
    dz, no_grads = activation_backward(dout, act_cache)
    dx, grads = affine_backward(dz, affine_cache)
    _, (dx_t, dW_t, db_t) = autograd_vjp(
        lambda x, W, b: activation_forward(F.linear(x, W, b), name)[0], (x, W, b), dout)
    assert no_grads == {}
    assert scaled_err(dx, dx_t) < TOL
    assert scaled_err(grads["weight"], dW_t) < TOL
    assert scaled_err(grads["bias"], db_t) < TOL


def test_flatten_round_trips_the_shape():
    x = torch.randn(3, 2, 4, 5, dtype=f64)
    out, cache = flatten_forward(x)
    assert out.shape == (3, 40) and torch.equal(out[1], x[1].flatten())
    dout = torch.randn(3, 40, dtype=f64)
    _, (dx_t,) = autograd_vjp(lambda x: x.flatten(1), (x,), dout)
    dx, grads = flatten_backward(dout, cache)
    assert grads == {} and torch.equal(dx, dx_t)
