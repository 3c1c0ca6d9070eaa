"""Sequential networks of the hand-written layers: the manual backward against autograd
through the same forward, and against the same network built of torch.nn modules (float64),
with batch norm's running statistics and train/eval modes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.losses import get_loss
from handgrad.engine.networks import build_network, cnn, mlp_bn
from handgrad.engine.sequential import Linear
from support import TOL, f64, scaled_err, seeds


def _pair(build, seed):
    """Two networks with the same weights and the same dropout seeds."""
    nets = []
    for _ in range(2):
        torch.manual_seed(seed)
        nets.append(build())
    return nets


def _batch(net, N, C, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(N, net.sizes[0], generator=gen, dtype=f64)
    return x, torch.randint(0, C, (N,), generator=gen)


networks = st.sampled_from(["cnn", "mlp-bn"])
images = st.sampled_from([(1, 8, 8), (3, 4, 8), (2, 4, 4)])


@settings(max_examples=12)
@given(networks, images, st.lists(st.integers(1, 12), max_size=2), st.integers(2, 4),
       st.integers(2, 9), seeds)
def test_manual_backward_matches_autograd_through_the_same_layers(model, image, hidden, C,
                                                                   N, seed):
    ours, theirs = _pair(lambda: build_network(model, image, hidden, C, "relu", seed, f64),
                         seed)
    x, y = _batch(ours, N, C, seed)
    loss = get_loss("cross_entropy")
    x_t = x.clone().requires_grad_()
    value_t = loss.torch_value(theirs(x_t), y)
    value_t.backward()
    with torch.no_grad():
        value, dL_dy = loss.value_and_grad(ours(x), y)
    dx = ours.backward(dL_dy, input_grad=True)
    assert scaled_err(value, value_t.detach()) < TOL
    assert scaled_err(dx, x_t.grad) < TOL
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert scaled_err(p.grad, q.grad) < TOL, name
    for (name, b), c in zip(ours.named_buffers(), theirs.buffers(), strict=True):
        assert torch.equal(b, c), name


@pytest.mark.parametrize("build", [
    lambda: cnn((3, 8, 8), [6], 3, dtype=f64),
    lambda: mlp_bn(12, [7, 5], 3, dropout=0.0, dtype=f64),
], ids=["cnn", "mlp-bn"])
@pytest.mark.parametrize("training", [True, False])
def test_network_matches_its_torch_nn_twin(build, training):
    torch.manual_seed(3)
    net = build().train(training)
    twin = net.to_torch()
    x, y = _batch(net, 10, 3, 1)
    loss = get_loss("cross_entropy")
    expected = loss.torch_value(twin(x), y)
    expected.backward()
    with torch.no_grad():
        value, dL_dy = loss.value_and_grad(net(x), y)
    assert net.backward(dL_dy) is None          # dL/dx not needed for training: skipped
    assert scaled_err(value, expected.detach()) < TOL
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert scaled_err(p.grad, q.grad) < TOL
    for b, c in zip(net.buffers(), twin.buffers(), strict=True):
        assert scaled_err(b.double(), c.double()) < TOL


def test_eval_mode_turns_dropout_off_and_freezes_batchnorm():
    torch.manual_seed(0)
    net = mlp_bn(12, [16], 2, dropout=0.5, dtype=f64)
    x, _ = _batch(net, 8, 2, 0)
    assert not torch.equal(net(x), net(x))          # training: fresh masks each call
    net.eval()
    stats = [b.clone() for b in net.buffers()]
    assert torch.equal(net(x), net(x))
    assert all(torch.equal(a, b) for a, b in zip(stats, net.buffers(), strict=True))


def test_backward_before_forward_and_a_wrong_input_are_refused():
    with pytest.raises(RuntimeError, match="Linear.backward before any forward"):
        Linear(3, 2).backward(torch.ones(1, 2))
    net = cnn((1, 8, 8), [4], 2)
    with pytest.raises(ValueError, match=r"input must be \(N, 64\), got shape \(2, 63\)"):
        net(torch.ones(2, 63))
    with pytest.raises(ValueError, match="sides divide by 4, got 6x6"):
        cnn((1, 6, 6), [4], 2)
    with pytest.raises(ValueError, match="unknown model 'mlp'; choose from: cnn, mlp-bn"):
        build_network("mlp", (1, 8, 8), [4], 2)
