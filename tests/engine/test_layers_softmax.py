"""softmax_cross_entropy against F.cross_entropy (mean over N) in float64, over class indices
and probability targets, stable for huge scores."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.layers import (
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from support import TOL, autograd_vjp, f64, make_targets, scaled_err, seeds


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
