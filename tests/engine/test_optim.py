from __future__ import annotations

import copy
import itertools
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handgrad.engine import optim
from support import rel_err

STEPS = 50


def _params(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((4, 3), (3,), (2, 5))]


def _grad_at(step: int, p: torch.Tensor, i: int) -> torch.Tensor:
    """A gradient that depends on the parameter (like a real loss) and on the step."""
    gen = torch.Generator().manual_seed(1000 * step + i)
    return p.detach() * 0.3 + torch.randn(p.shape, generator=gen, dtype=torch.float64)


def _run(opt_cls, kwargs, seed, steps=STEPS, split_at=None):
    params = [p.clone().requires_grad_() for p in _params(seed)]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": kwargs.get("lr", 1e-3) * 0.5}]
    opt = opt_cls(groups, **kwargs)
    for step in range(steps):
        if split_at is not None and step == split_at:
            state = copy.deepcopy(opt.state_dict())
            opt = opt_cls([{"params": params[:2]}, {"params": params[2:]}], **kwargs)
            opt.load_state_dict(state)
        for i, p in enumerate(params):
            p.grad = _grad_at(step, p, i)
        opt.step()
    return params, opt


def _assert_same_trajectory(ours, theirs):
    for a, b in zip(ours[0], theirs[0], strict=True):
        assert rel_err(a.detach(), b.detach()) <= 1e-12


SGD_FLAGS = [
    dict(momentum=m, dampening=d, weight_decay=wd, nesterov=n, maximize=mx)
    for m, d, wd, n, mx in itertools.product([0, 0.9], [0, 0.3], [0, 0.1], [False, True],
                                             [False, True])
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("flags", SGD_FLAGS, ids=str)
def test_sgd_matches_torch_every_flag(flags):
    kwargs = dict(lr=0.05, **flags)
    ours, theirs = _run(optim.SGD, kwargs, 0), _run(torch.optim.SGD, kwargs, 0)
    _assert_same_trajectory(ours, theirs)
    if flags["momentum"]:
        p = ours[0][0]
        assert set(ours[1].state[p]) == set(theirs[1].state[theirs[0][0]]) == {"momentum_buffer"}


ADAM_FLAGS = [
    dict(weight_decay=wd, amsgrad=a, maximize=mx)
    for wd, a, mx in itertools.product([0, 0.05], [False, True], [False, True])
]


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
@pytest.mark.parametrize("flags", ADAM_FLAGS, ids=str)
def test_adam_and_adamw_match_torch_every_flag(cls, flags):
    kwargs = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, **flags)
    ours = _run(getattr(optim, cls), kwargs, 1)
    theirs = _run(getattr(torch.optim, cls), kwargs, 1)
    _assert_same_trajectory(ours, theirs)
    p, q = ours[0][0], theirs[0][0]
    assert set(ours[1].state[p]) == set(theirs[1].state[q])
    assert ours[1].state[p]["step"].item() == STEPS


@given(seed=st.integers(0, 1000), lr=st.floats(1e-4, 0.5), momentum=st.floats(0, 0.99),
       weight_decay=st.floats(0, 0.5), nesterov=st.booleans())
def test_sgd_matches_torch_random_hyperparameters(seed, lr, momentum, weight_decay, nesterov):
    kwargs = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                  nesterov=nesterov and momentum > 0)
    _assert_same_trajectory(_run(optim.SGD, kwargs, seed, steps=20),
                            _run(torch.optim.SGD, kwargs, seed, steps=20))


@pytest.mark.parametrize("cls,kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_state_dict_round_trip_mid_training_keeps_the_trajectory(cls, kwargs):
    straight = _run(getattr(optim, cls), kwargs, 2)
    resumed = _run(getattr(optim, cls), kwargs, 2, split_at=STEPS // 2)
    _assert_same_trajectory(resumed, straight)
    _assert_same_trajectory(resumed, _run(getattr(torch.optim, cls), kwargs, 2))


def test_defaults_are_torchs():
    p = [torch.zeros(2, requires_grad=True)]
    for name in ("SGD", "Adam", "AdamW"):
        ours, theirs = getattr(optim, name)(p).defaults, getattr(torch.optim, name)(p).defaults
        for key, value in ours.items():
            assert theirs[key] == value, (name, key)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_positional_arguments_are_torchs(name):
    p = [torch.zeros(2, requires_grad=True)]
    args = (0.01, (0.8, 0.9), 1e-6, 0.3, True)  # lr, betas, eps, weight_decay, amsgrad
    ours, theirs = getattr(optim, name)(p, *args).defaults, getattr(torch.optim, name)(p, *args)
    assert all(theirs.defaults[key] == value for key, value in ours.items())


@pytest.mark.parametrize("cls,kwargs", [
    ("SGD", dict(lr=-1)), ("SGD", dict(momentum=-0.1)), ("SGD", dict(weight_decay=-1)),
    ("SGD", dict(nesterov=True)), ("SGD", dict(momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adam", dict(lr=-1)), ("Adam", dict(eps=-1)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("AdamW", dict(weight_decay=-0.1)),
])
def test_validation_messages_are_torchs(cls, kwargs):
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, cls)(p, **kwargs)
    with pytest.raises(ValueError, match=str(theirs.value).replace("(", r"\(").replace(")", r"\)")):
        getattr(optim, cls)(p, **kwargs)


def test_zero_grad_clears_gradients():
    p = torch.zeros(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    opt.zero_grad()
    assert p.grad is None and torch.allclose(p.detach(), torch.full((3,), -0.1))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_param_group_checks_are_torchs(name):
    """add_param_group runs torch's own code (unwrapped): the same checks, the same groups."""
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    for groups in ([{"params": [p]}, {"params": [p]}], [{"params": [p, 1.0]}]):
        with pytest.raises((ValueError, TypeError)) as theirs:
            getattr(torch.optim, name)(groups, lr=0.1)
        with pytest.raises(type(theirs.value), match=str(theirs.value)[:30]):
            getattr(optim, name)(groups, lr=0.1)
    ours = getattr(optim, name)([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    theirs = getattr(torch.optim, name)([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    for mine, torchs in zip(ours.param_groups, theirs.param_groups, strict=True):
        assert set(mine) == {"params", *ours.defaults}  # every default filled in
        assert {k: mine[k] for k in ours.defaults} == {k: torchs[k] for k in ours.defaults}


def test_building_and_stepping_does_not_import_dynamo():
    """torch._dynamo takes about a second to import; a manual-engine run never needs it."""
    code = ("import sys, torch\nfrom handgrad.engine import optim\n"
            "p = torch.zeros(2, requires_grad=True)\np.grad = torch.ones(2)\n"
            "for cls in (optim.SGD, optim.Adam, optim.AdamW):\n    cls([p], lr=0.1).step()\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
