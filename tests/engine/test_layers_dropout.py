"""dropout: inverted scaling, a mask drawn from the caller's seeded generator, the identity in
evaluation mode, and its gradient against autograd through the same mask (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.layers import dropout_backward, dropout_forward
from support import autograd_vjp, f64, scaled_err, seeds


@settings(max_examples=40)
@given(st.integers(1, 20), st.integers(1, 20), st.sampled_from([0.1, 0.5, 0.9, 0.0, 1.0]),
       seeds)
def test_dropout_gradient_matches_autograd_through_the_same_mask(N, D, p, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=gen, dtype=f64)
    dout = torch.randn(N, D, generator=gen, dtype=f64)
    out, mask = dropout_forward(x, p, True, torch.Generator().manual_seed(seed))
    expected, (dx_t,) = autograd_vjp(
        lambda x: dropout_forward(x, p, True, torch.Generator().manual_seed(seed))[0], (x,), dout)
    dx, grads = dropout_backward(dout, mask)
    assert grads == {} and torch.equal(out, expected) and scaled_err(dx, dx_t) < 1e-15
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / (1 - p), rtol=1e-15, atol=0)   # scaled once
    if p == 1:
        assert not kept.any()


def test_dropout_scales_as_torch_nn_dropout_does():
    x = torch.randn(200, 50, dtype=f64) + 5   # never 0, so a dropped value is a zero
    torch.manual_seed(0)
    theirs = F.dropout(x, 0.3, training=True)
    ours, _ = dropout_forward(x, 0.3, True, torch.Generator().manual_seed(0))
    for out in (ours, theirs):
        kept = out != 0
        assert torch.allclose(out[kept], x[kept] / 0.7, rtol=0, atol=1e-14)
        assert abs(1 - kept.double().mean().item() - 0.3) < 0.01   # 10,000 draws


def test_dropout_mask_comes_from_the_seeded_generator():
    x = torch.ones(64, 64, dtype=f64)
    a, _ = dropout_forward(x, 0.5, True, torch.Generator().manual_seed(7))
    b, _ = dropout_forward(x, 0.5, True, torch.Generator().manual_seed(7))
    c, _ = dropout_forward(x, 0.5, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dropout_is_the_identity_in_evaluation_mode():
    x, dout = torch.randn(5, 4, dtype=f64), torch.randn(5, 4, dtype=f64)
    out, cache = dropout_forward(x, 0.5, training=False)
    assert out is x and cache is None
    dx, _ = dropout_backward(dout, cache)
    assert torch.equal(dx, dout)


def test_dropout_refuses_a_probability_outside_0_1():
    with pytest.raises(ValueError, match="dropout p must be in \\[0, 1\\], got 1.5"):
        dropout_forward(torch.ones(2, 2), 1.5)
