from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import ACTIVATIONS, get_activation
from support import activations, rel_err


@given(name=activations, seed=st.integers(0, 10_000), n=st.integers(1, 40))
def test_derivative_matches_autograd(name, seed, n):
    gen = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, 3, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    act = get_activation(name)
    a = act.f(z)
    (expected,) = torch.autograd.grad(a.sum(), z, retain_graph=True)
    assert rel_err(act.df(z.detach()), expected) <= 1e-12
    upstream = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    (expected_dz,) = torch.autograd.grad(a, z, upstream)
    dz = act.backward(upstream.clone(), z.detach(), a.detach())
    assert rel_err(dz, expected_dz) <= 1e-12


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_at_exactly_zero_follows_autograd(name):
    z = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    act = get_activation(name)
    (expected,) = torch.autograd.grad(act.f(z).sum(), z)
    assert torch.equal(act.df(z.detach()), expected)


def test_relu_derivative_at_zero_is_zero():
    assert get_activation("relu").df(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        get_activation("swish")
