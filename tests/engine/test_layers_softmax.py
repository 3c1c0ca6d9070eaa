"""softmax_cross_entropy against F.cross_entropy (mean over N) in float64, over class indices
and probability targets, stable for huge scores; affine, activation and flatten against
F.linear, the activations and reshape under autograd."""

from __future__ import annotations

import math

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
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from support import activations, autograd_vjp, make_targets, scaled_err, seeds

TOL = 1e-10
f64 = torch.float64


@settings(max_examples=40)
@given(st.integers(1, 16), st.integers(2, 10), st.sampled_from([1.0, 1e3]), seeds)
def test_softmax_cross_entropy_matches_functional_cross_entropy(N, C, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(N, C, generator=gen, dtype=f64)
    y = make_targets("cross_entropy", N, C, gen)
    dout = torch.rand((), generator=gen, dtype=f64) + 0.5
    expected, (dx_t,) = autograd_vjp(lambda x: F.cross_entropy(x, y), (x,), dout)
    loss, cache = softmax_cross_entropy_forward(x, y)
    dx, grads = softmax_cross_entropy_backward(dout, cache)
    assert math.isfinite(loss.item()) and grads == {}
    assert scaled_err(loss, expected) < TOL
    assert scaled_err(dx, dx_t) < TOL


def test_softmax_cross_entropy_one_hot_equals_indices():
    x = torch.randn(6, 4, dtype=f64)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    by_index, c1 = softmax_cross_entropy_forward(x, y)
    by_one_hot, c2 = softmax_cross_entropy_forward(x, F.one_hot(y, 4).to(f64))
    assert scaled_err(by_index, by_one_hot) < 1e-15
    assert scaled_err(softmax_cross_entropy_backward(1.0, c1)[0],
                      softmax_cross_entropy_backward(1.0, c2)[0]) < 1e-15


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
