from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import MLP
from handgrad.engine.autograd_fn import HandBackward, MLPFunction, mlp_apply
from support import architectures


@given(sizes=architectures(max_depth=3, max_width=6),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus", "elu", "identity"]),
       N=st.integers(1, 4))
def test_torch_gradcheck_runs_on_the_hand_written_backward(sizes, activation, N):
    torch.manual_seed(0)
    model = MLP(sizes, activation=activation, dtype=torch.float64)
    acts = [model.act[l] for l in range(1, model.L + 1)]
    x = torch.randn(N, sizes[0], dtype=torch.float64, requires_grad=True)
    params = [p for p in model.parameters()]
    assert torch.autograd.gradcheck(lambda x, *p: MLPFunction.apply(x, acts, *p), (x, *params))


def test_same_forward_and_gradients_as_autograd():
    torch.manual_seed(0)
    model = MLP([7, 6, 3], dtype=torch.float64)
    x, t = torch.randn(5, 7, dtype=torch.float64), torch.randint(0, 3, (5,))
    torch.nn.functional.cross_entropy(model(x), t).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    y = mlp_apply(model, x)
    assert torch.allclose(y, model(x))
    torch.nn.functional.cross_entropy(y, t).backward()
    for got, want in zip([p.grad for p in model.parameters()], expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-15)


def test_training_with_the_hand_written_backward_matches_autograd():
    def run(wrap: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = MLP([4, 8, 2], activation="tanh", dtype=torch.float64)
        net = HandBackward(model) if wrap else model
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
            t = torch.randint(0, 2, (8,), generator=gen)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), t).backward()
            opt.step()
        return model.weight(1).detach()

    assert torch.allclose(run(True), run(False), rtol=1e-10, atol=1e-13)


def test_gradcheck_catches_a_broken_backward(monkeypatch):
    from handgrad.engine import activations

    broken = activations.Activation("tanh", torch.tanh, lambda z, a: (torch.full_like(a, 0.5),))
    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", broken)
    model = MLP([3, 4, 2], activation="tanh", dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    acts = [model.act[1], model.act[2]]
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda x, *p: MLPFunction.apply(x, acts, *p),
                                 (x, *model.parameters()))
