from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import MLP, backpropagation, optim
from handgrad.engine.flat import flatten
from support import architectures, rel_err


@given(sizes=architectures(max_depth=3, max_width=10), momentum=st.sampled_from([0.0, 0.9]),
       weight_decay=st.sampled_from([0.0, 0.01]), transposed=st.booleans())
def test_one_flat_parameter_steps_exactly_like_the_per_tensor_optimizer(sizes, momentum,
                                                                       weight_decay,
                                                                       transposed):
    def run(flat: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = MLP(sizes, activation="tanh", dtype=torch.float64)
        if flat:
            opt = optim.SGD([flatten(model, transposed)], lr=0.1, momentum=momentum,
                            weight_decay=weight_decay)
        else:
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=momentum,
                            weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            x = torch.randn(4, sizes[0], generator=gen, dtype=torch.float64)
            t = torch.randn(4, sizes[-1], generator=gen, dtype=torch.float64)
            y = model(x)
            if flat:
                backpropagation(model, t, y, "mse")  # writes into the flat gradient
            else:
                model.zero_grad()
                backpropagation(model, t, y, "mse", accumulate_grad=True)
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(True), run(False), strict=True):
        assert rel_err(a, b) <= 1e-12


@pytest.mark.parametrize("transposed", [False, True])
def test_parameters_and_gradients_are_views_of_two_buffers(transposed):
    model = MLP([3, 4, 2], dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    theta = flatten(model, transposed)
    assert model.weight(1).shape == (4, 3)
    assert model.weight(1).stride() == ((1, 4) if transposed else (3, 1))
    assert theta.numel() == sum(p.numel() for p in before)
    for p, old in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, old)  # same values, new home
        assert p.data_ptr() >= theta.data_ptr()
        assert p.grad.data_ptr() >= theta.grad.data_ptr()
    assert model.dL_dw[1] is model.weight(1).grad
    with torch.no_grad():
        theta.zero_()
    assert all(p.abs().sum() == 0 for p in model.parameters())
