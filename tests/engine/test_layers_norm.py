"""batchnorm and layernorm against torch.nn.BatchNorm1d/2d and F.layer_norm in float64:
values, the gradient of the input and of γ, β, and the running statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.layers import (
    batchnorm_backward,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
)
from support import TOL, autograd_vjp, f64, scaled_err, seeds


@st.composite
def bn_inputs(draw):
    """x (N, D) or (N, C, H, W) with at least two values per channel, and its settings."""
    spatial = draw(st.booleans())
    shape = ((draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 4)),
              draw(st.integers(1, 4))) if spatial
             else (draw(st.integers(2, 16)), draw(st.integers(1, 12))))
    if shape[0] * (shape[2] * shape[3] if spatial else 1) < 2:
        shape = (2, *shape[1:])
    momentum = draw(st.sampled_from([0.1, 0.0, 1.0, 0.37]))
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.5]))
    return shape, momentum, eps, draw(seeds)


def _module(shape, momentum, eps, gen):
    cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    bn = cls(shape[1], eps=eps, momentum=momentum, dtype=f64)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(shape[1], generator=gen, dtype=f64))
        bn.bias.copy_(torch.randn(shape[1], generator=gen, dtype=f64))
        bn.running_mean.copy_(torch.randn(shape[1], generator=gen, dtype=f64))
        bn.running_var.copy_(torch.rand(shape[1], generator=gen, dtype=f64) + 0.5)
    return bn


@settings(max_examples=40)
@given(bn_inputs(), st.booleans())
def test_batchnorm_matches_torch_nn_in_train_and_eval_mode(case, training):
    shape, momentum, eps, seed = case
    gen = torch.Generator().manual_seed(seed)
    bn = _module(shape, momentum, eps, gen).train(training)
    x = 3 * torch.randn(shape, generator=gen, dtype=f64) + 1
    dout = torch.randn(shape, generator=gen, dtype=f64)
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    for _ in range(2):  # twice: the running statistics accumulate
        expected, (dx_t, dg_t, db_t) = autograd_vjp(
            lambda x, g, b: F.batch_norm(x, bn.running_mean, bn.running_var, g, b, training,
                                         momentum, eps), (x, bn.weight, bn.bias), dout)
        out, cache = batchnorm_forward(x, bn.weight.detach(), bn.bias.detach(), rm, rv,
                                       training, momentum, eps)
        dx, grads = batchnorm_backward(dout, cache)
        assert scaled_err(out, expected) < TOL
        assert scaled_err(dx, dx_t) < TOL
        assert scaled_err(grads["weight"], dg_t) < TOL
        assert scaled_err(grads["bias"], db_t) < TOL
        assert scaled_err(rm, bn.running_mean) < TOL
        assert scaled_err(rv, bn.running_var) < TOL


def test_batchnorm_running_var_is_unbiased_and_momentum_weighted():
    x = torch.tensor([[1.0], [3.0]], dtype=f64)   # mean 2, biased var 1, unbiased var 2
    rm, rv = torch.zeros(1, dtype=f64), torch.ones(1, dtype=f64)
    one = torch.ones(1, dtype=f64)
    batchnorm_forward(x, one, 0 * one, rm, rv, training=True, momentum=0.25)
    assert rm.item() == pytest.approx(0.75 * 0 + 0.25 * 2)
    assert rv.item() == pytest.approx(0.75 * 1 + 0.25 * 2)


def test_batchnorm_eval_mode_leaves_the_running_statistics_alone():
    rm, rv = torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64)
    x = torch.randn(4, 3, dtype=f64)
    batchnorm_forward(x, torch.ones(3, dtype=f64), torch.zeros(3, dtype=f64), rm, rv,
                      training=False)
    assert torch.equal(rm, torch.zeros(3, dtype=f64)) and torch.equal(rv, torch.ones(3, dtype=f64))


def test_batchnorm_refuses_one_value_per_channel_in_training():
    one = torch.ones(3, dtype=f64)
    with pytest.raises(ValueError, match=r"more than one value per channel.*\(1, 3\)"):
        batchnorm_forward(torch.randn(1, 3, dtype=f64), one, one, one.clone(), one.clone())


@settings(max_examples=40)
@given(st.integers(1, 12), st.integers(1, 16), st.sampled_from([1e-5, 0.1]), seeds)
def test_layernorm_matches_functional_layer_norm(N, D, eps, seed):
    gen = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(N, D, generator=gen, dtype=f64) - 1
    gamma, beta = (torch.randn(D, generator=gen, dtype=f64) for _ in range(2))
    dout = torch.randn(N, D, generator=gen, dtype=f64)
    expected, (dx_t, dg_t, db_t) = autograd_vjp(
        lambda x, g, b: F.layer_norm(x, (D,), g, b, eps), (x, gamma, beta), dout)
    out, cache = layernorm_forward(x, gamma, beta, eps)
    dx, grads = layernorm_backward(dout, cache)
    assert scaled_err(out, expected) < TOL
    assert scaled_err(dx, dx_t) < TOL
    assert scaled_err(grads["weight"], dg_t) < TOL
    assert scaled_err(grads["bias"], db_t) < TOL
