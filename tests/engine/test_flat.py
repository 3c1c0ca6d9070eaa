from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import MLP, backpropagation, get_loss, optim
from handgrad.data import load_dataset
from handgrad.engine.flat import FlatParams, flatten
from handgrad.run.config import TrainConfig
from handgrad.run.train import build_model, make_step
from support import activations, architectures, rel_err


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


@given(sizes=architectures(max_depth=3, max_width=12), activation=activations,
       N=st.integers(1, 9), transposed=st.booleans())
def test_the_fast_backward_writes_what_backpropagation_computes(sizes, activation, N,
                                                                transposed):
    torch.manual_seed(0)
    model = MLP(sizes, activation=activation, dtype=torch.float64)
    x = torch.randn(N, sizes[0], dtype=torch.float64)
    t = torch.randn(N, sizes[-1], dtype=torch.float64)
    backpropagation(model, t, model(x).detach(), "mse")
    expected = [(model.dL_dw[l].clone(), model.dL_db[l].clone()) for l in range(1, model.L + 1)]
    flat = FlatParams(model, transposed)
    y = model(x)
    flat.backward(get_loss("mse").grad(y, t))
    for l, (dW, db) in enumerate(expected, start=1):
        assert model.dL_dw[l] is flat.grads[l - 1][0]
        assert rel_err(model.dL_dw[l], dW) <= 1e-14 and rel_err(model.dL_db[l], db) <= 1e-14
        assert torch.equal(model.weight(l).grad, model.dL_dw[l])


def test_a_buffer_that_no_longer_fits_raises_instead_of_allocating():
    torch.manual_seed(0)
    model = MLP([4, 3, 2])
    flat = FlatParams(model)
    x, t = torch.randn(5, 4), torch.randn(5, 2)
    model.double()  # the parameters leave the flat buffer
    y = model(x.double())
    with pytest.raises(ValueError, match="no longer live in the flat buffer"):
        flat.backward(get_loss("mse").grad(y, t.double()))
    with pytest.raises(ValueError, match="no longer live in the flat buffer"):
        backpropagation(model, t.double(), y, "mse")
    swapped = MLP([4, 3, 2])
    flat = FlatParams(swapped)
    swapped.fc["2"].weight = torch.nn.Parameter(torch.zeros(2, 3))  # a new tensor, not in θ
    with pytest.raises(ValueError, match="no longer live in the flat buffer"):
        flat.backward(get_loss("mse").grad(swapped(x), t))
    fresh = MLP([4, 3, 2])
    flat = FlatParams(fresh)
    wrong = [(torch.zeros(3, 4), torch.zeros(3)), (torch.zeros(2, 4), torch.zeros(2))]
    with pytest.raises(ValueError, match=r"dL_dW buffer is \(2, 3\)"):
        flat.write_grads(wrong)
    with pytest.raises(ValueError, match="accumulate_grad"):
        backpropagation(fresh, t, fresh(x).detach(), "mse", accumulate_grad=True)


def test_after_flattening_training_updates_theta_and_the_model():
    """Regression: a gradient written anywhere but θ.grad would leave the weights frozen."""
    data = load_dataset("digits", seed=0)
    results = []
    for engine in ("manual", "autograd"):
        config = TrainConfig(dataset="digits", hidden=(16,), engine=engine, lr=0.05,
                             momentum=0.9, dtype="float64", batch_size=32)
        model = build_model(config, data.D, data.num_classes)
        before = [p.detach().clone() for p in model.parameters()]
        step = make_step(config, model, get_loss(config.loss))
        gen = torch.Generator().manual_seed(0)
        for i, (x, y) in enumerate(data.batches(data.train, 32, gen, torch.float64)):
            step(x, torch.nn.functional.one_hot(y, data.num_classes).double())
            if i == 5:
                break
        after = [p.detach().clone() for p in model.parameters()]
        assert all(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
        results.append(after)
    for ours, theirs in zip(*results, strict=True):
        assert rel_err(ours, theirs) <= 1e-12
