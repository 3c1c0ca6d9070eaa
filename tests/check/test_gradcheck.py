from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad import MLP
from handgrad.check.gradcheck import gradcheck
from handgrad.check.reference import random_problem
from support import activations, architectures


@given(sizes=architectures(max_depth=3, max_width=12), activation=activations,
       N=st.integers(1, 6))
def test_correct_backprop_passes(sizes, activation, N):
    p = random_problem(sizes, activation, "mse", N, seed=N)
    report = gradcheck(p.model, p.x, p.y_true, "mse", max_entries=20)
    assert report.passed, [(t.name, t.autograd_error, t.numeric_error) for t in report.tensors]
    assert [t.name for t in report.tensors][:2] == ["W1", "b1"]


def test_exercise_network_is_sampled_and_fast():
    torch.manual_seed(0)
    model = MLP([3072, 512, 128, 32, 2], dtype=torch.float64)
    x = torch.rand(4, 3072, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 0]), 2).double()
    report = gradcheck(model, x, y, "cross_entropy", max_entries=10)
    assert report.passed
    w1 = report.tensors[0]
    assert w1.shape == (512, 3072) and w1.entries_checked + w1.kinks_skipped == 10
    assert len(w1.worst) == 3 and len(w1.worst[0].index) == 2


def test_a_wrong_layer_is_named(monkeypatch):
    """Break the backward of layer 2 only: the report must fail W2/b2 and W1/b1 (below it),
    and pass the top layer."""
    from handgrad.engine import activations as acts

    torch.manual_seed(1)
    model = MLP([5, 4, 3, 2], activation="tanh", dtype=torch.float64)
    original = acts.Activation.backward

    def broken(self, dL_da, z, a):
        return original(self, dL_da, z, a) * (1.5 if z.shape[1] == 3 else 1.0)

    monkeypatch.setattr(acts.Activation, "backward", broken)
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    report = gradcheck(model, x, y, "mse")
    status = {t.name: t.passed for t in report.tensors}
    assert status == {"W1": False, "b1": False, "W2": False, "b2": False, "W3": True, "b3": True}
    assert report.first_failure().name == "W1"
    assert report.tensors[2].numeric_error > 0.1


def test_relu_kinks_are_skipped_and_reported():
    torch.manual_seed(0)
    model = MLP([3, 4, 2], dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():  # put one pre-activation within the step of 0
        z = model.fc["1"](x)
        model.bias(1)[0] -= z[0, 0] - 1e-7
    report = gradcheck(model, x, torch.randn(5, 2, dtype=torch.float64), "mse")
    assert report.passed
    assert sum(t.kinks_skipped for t in report.tensors) > 0
    assert any("kink" in w for w in report.warnings)


def test_float32_warns():
    torch.manual_seed(0)
    model = MLP([6, 5, 2], activation="sigmoid")
    report = gradcheck(model, torch.randn(3, 6), torch.randn(3, 2), "mse")
    assert report.passed and report.dtype == "float32"
    assert any("float32" in w for w in report.warnings)


def test_unsupported_dtype():
    model = MLP([2, 2], dtype=torch.float16)
    with pytest.raises(ValueError, match="float32 and float64"):
        gradcheck(model, torch.zeros(1, 2, dtype=torch.float16),
                  torch.zeros(1, 2, dtype=torch.float16), "mse")


def test_a_model_with_transposed_weight_storage_checks_too():
    from handgrad.engine.flat import flatten

    torch.manual_seed(0)
    model = MLP([5, 4, 3], activation="tanh", dtype=torch.float64)
    flatten(model, transposed=True)  # as the manual engine leaves a trained model
    report = gradcheck(model, torch.randn(3, 5, dtype=torch.float64),
                       torch.randn(3, 3, dtype=torch.float64), "mse")
    assert report.passed


def test_a_problem_with_every_gradient_zero_is_refused_not_passed():
    p = random_problem([4, 3, 1], "relu", "cross_entropy")  # softmax over one output
    with pytest.raises(ValueError, match="every gradient of this cross_entropy problem is "
                                         "exactly 0"):
        gradcheck(p.model, p.x, p.y_true, "cross_entropy")


def test_cli_refuses_cross_entropy_over_one_output(capsys):
    from handgrad.cli.main import main

    assert main(["gradcheck", "--sizes", "4", "3", "1", "--loss", "cross_entropy"]) == 2
    err = capsys.readouterr().err
    assert "--loss cross_entropy needs at least 2 outputs" in err and "agree" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["gradcheck", "--sizes", "4", "3", "1", "--loss", "bce_with_logits"]) == 0
