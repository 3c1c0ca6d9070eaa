"""Optimizers written by hand, mirroring `torch.optim` argument for argument.

`SGD`, `Adam` and `AdamW` subclass `torch.optim.Optimizer`: same constructor arguments,
defaults, validation messages, param groups, `zero_grad()`, `state_dict()` and
`load_state_dict()`, and the same `state[p]` keys (`momentum_buffer`; `step`, `exp_avg`,
`exp_avg_sq`, `max_exp_avg_sq`). Switching `torch.optim.SGD` for `handgrad.engine.optim.SGD` is a
one-word change. Each class is a thin shell over one function that does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

Tensor = torch.Tensor


def _scalar_dtype() -> torch.dtype:
    """The dtype torch uses for the `step` counter: float64 under a float64 default."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def sgd_update(
    param: Tensor,
    grad: Tensor,
    buf: Tensor | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> Tensor | None:
    """One SGD step on `param` in place; returns the new momentum buffer (None without one).

        g  = ±∇ + λ θ                            (λ = weight_decay, minus sign when maximize)
        b  = g                 on the first step (no dampening applied)
        b  = μ b + (1 - τ) g   afterwards        (μ = momentum, τ = dampening)
        g  = g + μ b  if nesterov else b
        θ  = θ - lr g
    """
    d_p = -grad if maximize else grad
    if weight_decay != 0:
        d_p = d_p.add(param, alpha=weight_decay)
    if momentum != 0:
        if buf is None:
            buf = d_p.clone()
        elif dampening == 0:
            torch.add(d_p, buf, alpha=momentum, out=buf)  # b = g + μ b, one pass
        else:
            buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
        d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
    param.add_(d_p, alpha=-lr)
    return buf


def adam_update(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> None:
    """One Adam / AdamW step on `param` and its `state` in place.

        t = t + 1;  g = ±∇
        θ = θ (1 - lr λ)                       if decoupled (AdamW), before the moments
        g = g + λ θ                            otherwise (Adam's L2 penalty)
        m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²
        v̂ = max(v̂, v) if amsgrad else v
        θ = θ - lr / (1 - β1ᵗ) · m / (sqrt(v̂) / sqrt(1 - β2ᵗ) + eps)
    """
    grad = -grad if maximize else grad
    state["step"] += 1
    step = state["step"].item()
    if weight_decay != 0:
        if decoupled:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    second = state["max_exp_avg_sq"] if amsgrad else exp_avg_sq
    if amsgrad:
        torch.maximum(second, exp_avg_sq, out=second)
    step_size = lr / (1 - beta1**step)
    denom = (second.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


def _evaluate(closure: Callable[[], float] | None) -> float | None:
    """The loss from `closure` (with gradients enabled), as torch's optimizers do."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class EagerOptimizer(Optimizer):
    """torch.optim.Optimizer, constructed without importing torch._dynamo.

    torch wraps `Optimizer.add_param_group` in `torch._disable_dynamo`, which imports
    torch._dynamo (about a second) the first time it runs, to keep torch.compile out of it.
    handgrad's optimizers are eager code that nothing compiles, so they call the method
    underneath: a training run of the manual engine never pays for that import.
    """

    def add_param_group(self, param_group: dict) -> None:
        unwrapped = getattr(Optimizer.add_param_group, "__wrapped__", None)
        if unwrapped is None:  # a torch that does not wrap it
            super().add_param_group(param_group)
        else:
            unwrapped(self, param_group)


def _refuse(*checks: tuple[bool, str]) -> None:
    """ValueError with the message of the first check that fails (`(bad, message)`, in
    torch.optim's order and words)."""
    for bad, message in checks:
        if bad:
            raise ValueError(message)


class SGD(EagerOptimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    The rule is torch's (see `sgd_update`): weight decay is added to the gradient before
    momentum, and the first momentum step sets the buffer to the gradient itself, with no
    dampening. State: `state[p]["momentum_buffer"]`.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _refuse((lr < 0.0, f"Invalid learning rate: {lr}"),
                (momentum < 0.0, f"Invalid momentum value: {momentum}"),
                (weight_decay < 0.0, f"Invalid weight_decay value: {weight_decay}"),
                (nesterov and (momentum <= 0 or dampening != 0),
                 "Nesterov momentum requires a momentum and zero dampening"))
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Update every parameter that has a gradient; returns closure() when given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                buf = sgd_update(
                    p, p.grad, state.get("momentum_buffer"),
                    lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                    weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                    maximize=group["maximize"],
                )
                if buf is not None:
                    state["momentum_buffer"] = buf
        return loss


class Adam(EagerOptimizer):
    """Adam (Kingma & Ba) with torch's conventions (see `adam_update`).

    Weight decay here is an L2 penalty added to the gradient; `AdamW` decouples it. State:
    `step` (a scalar tensor), `exp_avg`, `exp_avg_sq` and, with amsgrad, `max_exp_avg_sq`.
    """

    _decoupled = False
    default_weight_decay = 0.0  # torch's default of each class: AdamW's is 1e-2

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,  # None: the class's default_weight_decay
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if weight_decay is None:
            weight_decay = self.default_weight_decay
        _refuse((lr < 0.0, f"Invalid learning rate: {lr}"),
                (eps < 0.0, f"Invalid epsilon value: {eps}"),
                (not 0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}"),
                (not 0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}"),
                (weight_decay < 0.0, f"Invalid weight_decay value: {weight_decay}"))
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, amsgrad: bool) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Update every parameter that has a gradient; returns closure() when given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                adam_update(
                    p, p.grad, self._init_state(p, group["amsgrad"]),
                    lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                    maximize=group["maximize"], decoupled=self._decoupled,
                )
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ (1 - lr λ) before the
    moments are updated, instead of adding λ θ to the gradient. Default λ = 1e-2, as torch.
    """

    _decoupled = True
    default_weight_decay = 1e-2
