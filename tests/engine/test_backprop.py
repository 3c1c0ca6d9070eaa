from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import handgrad
from handgrad import MLP, backpropagation
from handgrad.engine.backprop import linear_backward, linear_backward_into
from support import activations, architectures, autograd_grads, losses, make_targets, rel_err


def _net(sizes, activation="relu", seed=0, dtype=torch.float64, out_activation="identity"):
    torch.manual_seed(seed)
    return MLP(sizes, activation=activation, out_activation=out_activation, dtype=dtype)


def _assert_matches_autograd(model, x, t, loss, tol):
    expected = autograd_grads(model, x, t, loss)
    with torch.no_grad():
        y_pred = model(x)
    backpropagation(model, t, y_pred, loss=loss)
    for l, (dW, db) in enumerate(expected, start=1):
        assert rel_err(model.dL_dw[l], dW) <= tol, f"dL_dw[{l}]"
        assert rel_err(model.dL_db[l], db) <= tol, f"dL_db[{l}]"


@given(
    sizes=architectures(),
    activation=activations,
    out_activation=st.sampled_from(["identity", "sigmoid", "tanh"]),
    loss=losses,
    N=st.integers(1, 33),
    seed=st.integers(0, 10_000),
)
def test_backpropagation_equals_autograd(sizes, activation, out_activation, loss, N, seed):
    model = _net(sizes, activation, seed, out_activation=out_activation)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, sizes[0], generator=gen, dtype=torch.float64)
    t = make_targets(loss, N, sizes[-1], gen)
    _assert_matches_autograd(model, x, t, loss, tol=1e-13)


@given(N=st.integers(1, 9), D=st.integers(1, 9), H=st.integers(1, 9), activation=activations,
       seed=st.integers(0, 10_000))
def test_layer_backwards_are_pure_and_their_in_place_twins_agree(N, D, H, activation, seed):
    gen = torch.Generator().manual_seed(seed)
    dL_dz, z = (torch.randn(N, H, generator=gen, dtype=torch.float64) for _ in range(2))
    a_prev = torch.randn(N, D, generator=gen, dtype=torch.float64)
    W = torch.randn(H, D, generator=gen, dtype=torch.float64)
    act = handgrad.get_activation(activation)
    a = act.f(z)
    inputs = [t.clone() for t in (dL_dz, z, a, a_prev, W)]
    dL_da_prev, dL_dW, dL_db = linear_backward(dL_dz, a_prev, W)
    assert (dL_da_prev.shape, dL_dW.shape, dL_db.shape) == ((N, D), (H, D), (H,))
    dz = act.backward(dL_dz, z, a)
    assert dz.data_ptr() != dL_dz.data_ptr()
    for before, after in zip(inputs, (dL_dz, z, a, a_prev, W), strict=True):
        assert torch.equal(before, after)  # nothing written over
    assert torch.equal(act.backward_(dL_dz.clone(), z, a), dz)
    out_W, out_b = torch.empty(H, D, dtype=torch.float64), torch.empty(H, dtype=torch.float64)
    got = linear_backward_into(dL_dz, a_prev, W, out_W, out_b)
    assert torch.equal(got, dL_da_prev) and torch.equal(out_W, dL_dW)
    assert torch.equal(out_b, dL_db)
    assert linear_backward(dL_dz, a_prev, W, input_grad=False)[0] is None


def test_linear_backward_into_raises_instead_of_allocating():
    dL_dz, a_prev = torch.randn(5, 3), torch.randn(5, 4)
    W = torch.randn(3, 4)
    good_b = torch.empty(3)
    for bad in (torch.empty(4, 3), torch.empty(3, 4, dtype=torch.float64), torch.empty(12)):
        with pytest.raises(ValueError, match="dL_dW buffer is"):
            linear_backward_into(dL_dz, a_prev, W, bad, good_b)
    with pytest.raises(ValueError, match=r"dL_db buffer is \(4,\)"):
        linear_backward_into(dL_dz, a_prev, W, torch.empty(3, 4), torch.empty(4))


def test_exercise_network_in_float32():
    model = _net([3072, 512, 128, 32, 2], dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(64, 3072, generator=gen)
    t = torch.nn.functional.one_hot(torch.randint(0, 2, (64,), generator=gen), 2).float()
    _assert_matches_autograd(model, x, t, "cross_entropy", tol=1e-4)


def test_whole_network_against_central_differences():
    model = _net([4, 5, 3, 2], activation="tanh", seed=3)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    t = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    backpropagation(model, t, model(x).detach(), loss="mse")
    h = 1e-6
    with torch.no_grad():
        for l in range(1, model.L + 1):
            for param, grad in ((model.weight(l), model.dL_dw[l]), (model.bias(l), model.dL_db[l])):
                flat = param.view(-1)
                numeric = torch.empty_like(flat)
                for i in range(flat.numel()):
                    old = flat[i].item()
                    flat[i] = old + h
                    up = handgrad.get_loss("mse").value(model(x), t).item()
                    flat[i] = old - h
                    down = handgrad.get_loss("mse").value(model(x), t).item()
                    flat[i] = old
                    numeric[i] = (up - down) / (2 * h)
                assert rel_err(grad.reshape(-1), numeric) <= 1e-7


def test_relu_input_exactly_zero_follows_autograd():
    model = _net([2, 3, 1])
    with torch.no_grad():
        model.weight(1).copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model.bias(1).zero_()
    x = torch.tensor([[0.0, 2.0], [-1.0, 1.0]], dtype=torch.float64)  # z = 0 in places
    t = torch.randn(2, 1, dtype=torch.float64)
    _assert_matches_autograd(model, x, t, "sse", tol=1e-12)
    assert (model.z[1] == 0).any()


def test_one_1d_sample():
    model = _net([5, 4, 3])
    x = torch.randn(5, dtype=torch.float64)
    t = torch.randn(3, dtype=torch.float64)
    _assert_matches_autograd(model, x, t, "sse", tol=1e-12)
    assert model.dL_dw[1].shape == (4, 5) and model.dL_db[1].shape == (4,)
    assert model.a[0].shape == (5,)


@pytest.mark.parametrize("sizes", [[3, 1, 2], [3, 2], [1, 1]])
def test_one_unit_layers_and_one_layer_nets(sizes):
    model = _net(sizes, activation="sigmoid")
    x = torch.randn(7, sizes[0], dtype=torch.float64)
    _assert_matches_autograd(model, x, torch.randn(7, sizes[-1], dtype=torch.float64), "mse", 1e-12)


def test_accumulate_grad_adds_like_autograd():
    model = _net([4, 3, 2])
    x1, x2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    t1, t2 = torch.randn(5, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    for x, t in ((x1, t1), (x2, t2)):
        backpropagation(model, t, model(x).detach(), accumulate_grad=True)
    manual = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for x, t in ((x1, t1), (x2, t2)):
        ((model(x) - t) ** 2).sum().backward()
    for got, want in zip(manual, [p.grad for p in model.parameters()], strict=True):
        assert rel_err(got, want) <= 1e-12


def test_wrong_target_shape_and_unknown_loss_are_value_errors():
    model = _net([4, 3, 2])
    y = model(torch.randn(5, 4, dtype=torch.float64)).detach()
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(5, 2\)"):
        backpropagation(model, torch.zeros(5, 3, dtype=torch.float64), y)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        backpropagation(model, torch.zeros(5, 2, dtype=torch.float64), y, loss="l1")
    with pytest.raises(ValueError, match=r"input must be \(N, 4\)"):
        model(torch.randn(5, 3, dtype=torch.float64))


def student_backpropagation(model, y_true, y_pred):
    """A correct student solution, written only against the MLP contract (sse loss)."""
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](model.z[l])
        model.dL_dw[l] = dL_dz.T @ model.a[l - 1]
        model.dL_db[l] = dL_dz.sum(0)
        dL_da = dL_dz @ model.fc[str(l)].weight


@given(sizes=architectures(max_depth=4, max_width=16), activation=activations,
       N=st.integers(1, 9))
def test_student_function_runs_on_the_contract_and_matches(sizes, activation, N):
    model = _net(sizes, activation)
    x = torch.randn(N, sizes[0], dtype=torch.float64)
    t = torch.randn(N, sizes[-1], dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        student_backpropagation(model, t, y)
    student = {l: (model.dL_dw[l].clone(), model.dL_db[l].clone()) for l in range(1, model.L + 1)}
    backpropagation(model, t, y)
    for l in range(1, model.L + 1):
        assert rel_err(student[l][0], model.dL_dw[l]) <= 1e-12
        assert rel_err(student[l][1], model.dL_db[l]) <= 1e-12
