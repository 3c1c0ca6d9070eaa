from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import LOSSES, get_loss
from support import losses, make_targets, rel_err


@given(name=losses, seed=st.integers(0, 10_000), N=st.integers(1, 33), C=st.integers(1, 9))
def test_value_and_gradient_match_torch(name, seed, N, C):
    gen = torch.Generator().manual_seed(seed)
    y = (torch.randn(N, C, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    t = make_targets(name, N, C, gen)
    loss = get_loss(name)
    expected = loss.torch_value(y, t)
    (expected_grad,) = torch.autograd.grad(expected, y)
    assert abs(loss.value(y.detach(), t).item() - expected.item()) <= 1e-12 * max(
        1.0, abs(expected.item())
    )
    assert rel_err(loss.grad(y.detach(), t), expected_grad) <= 1e-12


def test_sse_gradient_is_the_exercise_formula():
    y, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 3.0]])
    assert torch.equal(get_loss("sse").grad(y, t), 2 * (y - t))


def test_cross_entropy_is_stable_for_huge_logits():
    y = torch.tensor([[1e4, -1e4], [-5e3, 5e3]], dtype=torch.float32)
    t = torch.tensor([1, 1])
    value = get_loss("cross_entropy").value(y, t)
    grad = get_loss("cross_entropy").grad(y, t)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert value.item() == pytest.approx(1e4, rel=1e-6)
    assert torch.allclose(grad, torch.tensor([[0.5, -0.5], [0.0, 0.0]]))


@given(seed=st.integers(0, 10_000), N=st.integers(1, 20), C=st.integers(2, 8))
def test_index_and_one_hot_targets_give_the_same_cross_entropy(seed, N, C):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(N, C, generator=gen, dtype=torch.float64)
    idx = torch.randint(0, C, (N,), generator=gen)
    one_hot = torch.nn.functional.one_hot(idx, C).double()
    ce = get_loss("cross_entropy")
    assert torch.allclose(ce.value(y, idx), ce.value(y, one_hot), rtol=1e-14, atol=0)
    assert torch.allclose(ce.grad(y, idx), ce.grad(y, one_hot), rtol=1e-14, atol=1e-17)


def test_one_sample_cross_entropy_matches_torch_unbatched():
    y = torch.randn(4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(2)
    expected = torch.nn.functional.cross_entropy(y, t)
    (g,) = torch.autograd.grad(expected, y)
    ce = get_loss("cross_entropy")
    assert ce.value(y.detach(), t).item() == pytest.approx(expected.item(), rel=1e-14)
    assert torch.allclose(ce.grad(y.detach(), t), g, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_wrong_target_shape_is_a_value_error(name):
    with pytest.raises(ValueError, match="shape|indices"):
        get_loss(name).grad(torch.zeros(4, 3), torch.zeros(5, 3))


def test_class_index_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"out of range \[0, 3\)"):
        get_loss("cross_entropy").grad(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*cross_entropy"):
        get_loss("hinge")
