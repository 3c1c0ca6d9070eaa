"""Shared hypothesis strategies and helpers for the tests (float64, torch as the oracle)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from handgrad import ACTIVATIONS, LOSSES
from handgrad.check.reference import autograd_reference

DIGITS = ["--dataset", "digits", "--hidden", "16", "--epochs", "2", "--quiet"]  # a quick run

activations = st.sampled_from(sorted(ACTIVATIONS))
losses = st.sampled_from(sorted(LOSSES))
seeds = st.integers(0, 2**31 - 1)


@st.composite
def architectures(draw, max_depth: int = 5, max_width: int = 64) -> list[int]:
    """Layer sizes [D, H_1, …, C] of a network of depth 1..max_depth."""
    depth = draw(st.integers(1, max_depth))
    return [draw(st.integers(1, max_width)) for _ in range(depth + 1)]


def make_targets(loss: str, N: int, C: int, gen: torch.Generator, dtype=torch.float64):
    """Targets that suit `loss` for a batch (N, C): indices or probabilities for CE."""
    if loss == "cross_entropy":
        if torch.rand((), generator=gen) < 0.5:
            return torch.randint(0, C, (N,), generator=gen)
        return torch.softmax(torch.randn(N, C, generator=gen, dtype=dtype), dim=1)
    if loss == "bce_with_logits":
        return torch.rand(N, C, generator=gen, dtype=dtype)
    return torch.randn(N, C, generator=gen, dtype=dtype)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max(max |expected|, 1e-30): one number per tensor."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(expected.abs().max().item(), 1e-30)
    return (actual - expected).abs().max().item() / scale


def autograd_grads(model, x, y_true, loss: str):
    """[(dW_l, db_l) for l = 1..L] computed by torch autograd on torch's own loss."""
    return autograd_reference(model, x, y_true, loss)


f64 = torch.float64
TOL = 1e-10  # a layer's hand-written result against autograd in float64 (scaled_err)


def autograd_vjp(fn, tensors, dout):
    """fn(*tensors) and the gradients of Σ fn(...) ⊙ dout with respect to every tensor, by
    torch autograd on fresh leaves (the oracle of the hand-written layers)."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, dout)
    return out.detach(), grads


def scaled_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max(max |expected|, 1): relative for tensors of size >= 1,
    absolute for tiny ones (a gradient that is 0 in exact arithmetic and rounding noise in
    torch's)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return (actual - expected).abs().max().item() / max(expected.abs().max().item(), 1.0)


def sweep_trials(sweep_dir):
    """The trials of the sweep study in `sweep_dir` (its journal), as Optuna stores them."""
    import optuna

    from handgrad.run.sweep import open_storage
    study = optuna.load_study(study_name=None, storage=open_storage(sweep_dir, None))
    return study.get_trials(deepcopy=False)


def started_configs(sweep_dir):
    """How many times each config of the sweep in `sweep_dir` began training."""
    from collections import Counter

    from handgrad.run.sweep import config_key
    return Counter(config_key(t.params) for t in sweep_trials(sweep_dir)
                   if "started" in t.user_attrs)
