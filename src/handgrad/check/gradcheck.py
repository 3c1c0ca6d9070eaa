"""Check hand-written gradients against autograd and central finite differences, per tensor.

For each parameter tensor (`W1`, `b1`, …) the report gives the largest relative error of
the hand-written gradient against autograd (every entry) and against central differences
(every entry, or a seeded random sample of `max_entries` for large tensors), the worst
entries with their indices, and pass/fail.

Relative error of an entry: |g - r| / max(|g|, |r|, 1e-3 · max_j |r_j|). The floor keeps
round-off on entries a thousand times smaller than the tensor's largest gradient from
reading as a large relative error.

Step and thresholds:
- Central differences are always taken in float64 with h = 1e-5: truncation error
  O(h² · |L'''|) ≈ 1e-10 and round-off O(ε · |L| / h) ≈ 2e-11 (ε = 2.2e-16), against gradient
  entries that are often 1e-4 or smaller in a wide first layer. 1e-5 relative is a pass line
  with margin on both sides: a real bug is off by 1e-1 or more.
- Hand-written vs autograd, in the model's own dtype, differ only by summation order:
  1e-10 in float64. In float32 an entry at the floor carries the round-off of the largest
  ones, ε · 1e3 · √(sum length) ≈ 1e-4 … 1e-3 (ε = 1.2e-7): 1e-3.
- A float32 model is copied to float64 for the differences (in float32 they would be noisy
  at the 1e-2 level) and its float32 gradient compared with them at 2e-3; the report warns
  that float64 is the sharp check.

Kinks (a ReLU's pre-activation at 0, a tie in a max pool's window): a difference taken across
one is meaningless. Each entry is differenced with steps h and h/2; a kink within the step
moves the two apart, a smooth loss does not, so an entry whose two differences disagree
beyond the tolerance is skipped, counted and reported.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from handgrad.check.reference import autograd_reference
from handgrad.engine.backprop import backpropagation
from handgrad.engine.layers import dropout_backward
from handgrad.engine.losses import Loss, get_loss
from handgrad.engine.model import MLP
from handgrad.engine.sequential import Dropout, Layer, Sequential

Tensor = torch.Tensor
STEP = 1e-5
EPS64 = torch.finfo(torch.float64).eps
SETTINGS = {  # model dtype: (tolerance vs finite differences, tolerance vs autograd)
    torch.float64: (1e-5, 1e-10),
    torch.float32: (2e-3, 1e-3),
}


@dataclass
class Entry:
    index: tuple[int, ...]
    hand: float
    reference: float
    rel_error: float


@dataclass
class TensorCheck:
    name: str  # W1, b1, …
    layer: int
    shape: tuple[int, ...]
    autograd_error: float
    numeric_error: float
    entries_checked: int
    kinks_skipped: int
    worst: list[Entry]
    passed: bool


@dataclass
class GradcheckReport:
    dtype: str
    step: float
    numeric_tolerance: float
    autograd_tolerance: float
    tensors: list[TensorCheck]
    warnings: list[str] = field(default_factory=list)

    HEADERS = ("tensor", "shape", "vs autograd", "vs finite diff", "entries", "kinks skipped",
               "worst entries", "result")

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    def first_failure(self) -> TensorCheck | None:
        return next((t for t in self.tensors if not t.passed), None)

    def rows(self) -> list[list]:
        return [[t.name, "x".join(map(str, t.shape)), t.autograd_error, t.numeric_error,
                 t.entries_checked, t.kinks_skipped,
                 " ".join(str(list(e.index)) for e in t.worst[:2]),
                 "pass" if t.passed else "FAIL"] for t in self.tensors]


def relative_errors(hand: Tensor, ref: Tensor, scale: Tensor | None = None,
                    floor: float = 0.0) -> Tensor:
    """|g - r| / max(|g|, |r|, 1e-3 max|scale|, floor), elementwise; `scale` defaults to `ref`."""
    scale = ref if scale is None else scale
    floor = max(1e-3 * scale.abs().max().item(), floor, torch.finfo(ref.dtype).tiny)
    return (hand - ref).abs() / torch.clamp(torch.maximum(hand.abs(), ref.abs()), min=floor)


def gradcheck(model: MLP | Sequential, x: Tensor, y_true: Tensor,
              loss: str = "cross_entropy", max_entries: int = 30, seed: int = 0,
              worst: int = 3) -> GradcheckReport:
    """Check the hand-written gradients of `model` for the batch x and targets y_true:
    `backpropagation` for the exercise's MLP (tensors W1, b1, …), every layer's `*_backward`
    for a `Sequential` (tensors named by layer, e.g. `Conv2d1.weight`; its dropout masks
    drawn again alike for every evaluation, and the network itself left untouched)."""
    dtype = next(model.parameters()).dtype
    if dtype not in SETTINGS:
        raise ValueError(f"gradcheck supports float32 and float64, got {dtype}")
    numeric_tol, autograd_tol = SETTINGS[dtype]
    loss_fn = get_loss(loss)
    if isinstance(model, MLP):
        named, problem = _mlp_gradients(model, x, y_true, loss_fn)
    else:
        named, problem = _network_gradients(model, x, y_true, loss_fn)
    _refuse_all_zero(named, loss)
    # Round-off floors: a gradient that is 0 by its equations (a bias under batch norm) is
    # round-off in both results; it is compared at the scale round-off allows, not as 0.
    eps = torch.finfo(dtype).eps
    largest = max(auto.abs().max().item() for _, _, _, auto in named)
    autograd_floor = 10 * eps * largest / autograd_tol
    hand_floor = 10 * eps * largest / numeric_tol  # float32's round-off
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for (name, layer, hand, auto), param in zip(named, problem.params, strict=True):
        # Below √eps of the largest gradient, autograd's tensor is 0 by its equations: its
        # round-off (a sum of terms that cancel, maybe scaled up by 1/σ) is measured against
        # the largest gradient, where a real mistake shows.
        zero = auto.abs().max().item() <= math.sqrt(eps) * largest
        floor = largest if zero else autograd_floor
        autograd_error = relative_errors(hand, auto, floor=floor).max().item()
        numeric_error, checked, kinks, entries = problem.compare(
            param, hand, auto, max_entries, gen, worst, numeric_tol, hand_floor)
        passed = autograd_error <= autograd_tol and numeric_error <= numeric_tol
        tensors.append(TensorCheck(name, layer, tuple(param.shape), autograd_error,
                                   numeric_error, checked, kinks, entries, passed))
    return GradcheckReport(str(dtype).replace("torch.", ""), STEP, numeric_tol, autograd_tol,
                           tensors, _warnings(dtype, tensors))


def _warnings(dtype: torch.dtype, tensors: list[TensorCheck]) -> list[str]:
    warnings = []
    if dtype == torch.float32:
        warnings.append("float32: compared with autograd at 1e-3 and with float64 finite "
                        "differences at 2e-3; use float64 for the sharp check")
    skipped = sum(t.kinks_skipped for t in tensors)
    if skipped:
        warnings.append(f"{skipped} sampled entries skipped: their finite difference crossed "
                        "a kink (a ReLU at 0, a tie of a max pool)")
    return warnings


Named = list[tuple[str, int, Tensor, Tensor]]  # (name, layer, hand-written, autograd) a tensor


def _mlp_gradients(model: MLP, x: Tensor, y_true: Tensor, loss_fn: Loss,
                   ) -> tuple[Named, _Problem]:
    """W1, b1, …: `backpropagation`'s dL_dw/dL_db and autograd's, and the float64 problem."""
    with torch.no_grad():
        y_pred = model(x)
    backpropagation(model, y_true, y_pred, loss_fn.name)
    auto = autograd_reference(model, x, y_true, loss_fn.name)
    named = [(f"{kind}{l}", l, grad.clone(), auto[l - 1][i])
             for l in range(1, model.L + 1)
             for kind, grad, i in (("W", model.dL_dw[l], 0), ("b", model.dL_db[l], 1))]
    twin = model if model.weight(1).dtype == torch.float64 else model.copy_as(torch.float64)
    y64 = y_true.double() if y_true.is_floating_point() else y_true
    params = [p for pair in twin.params_by_layer() for p in pair]
    return named, _Problem(params, lambda: loss_fn.value(twin(x.double()), y64).item())


def _network_gradients(net: Sequential, x: Tensor, y_true: Tensor, loss_fn: Loss,
                       ) -> tuple[Named, _Problem]:
    """Every parameter of a `Sequential`: its layers' hand-written gradients and autograd's,
    both on copies of `net` (batch norm's running statistics are not moved)."""
    def loss_of(copy: Sequential, x: Tensor, y_true: Tensor) -> Tensor:
        for layer in copy.layers:
            if isinstance(layer, Dropout):
                layer.reseed()  # the same masks at every evaluation
        return loss_fn.torch_value(copy(x), y_true)

    names = [f"{type(layer).__name__}{i}.{p}" for i, layer in enumerate(net.layers)
             for p, _ in layer.named_parameters()]
    layers = [i for i, layer in enumerate(net.layers) for _ in layer.parameters()]
    hand_net, auto_net = _copy(net, None), _copy(net, None)
    with torch.no_grad():
        for layer in hand_net.layers:
            if isinstance(layer, Dropout):
                layer.reseed()
        y_pred = hand_net(x)
        hand_net.backward(loss_fn.grad(y_pred, y_true))
    hand = [p.grad for p in hand_net.parameters()]
    with torch.enable_grad():
        auto = torch.autograd.grad(loss_of(auto_net, x, y_true), list(auto_net.parameters()))
    twin = _copy(net, torch.float64)
    for i, layer in enumerate(hand_net.layers):
        if isinstance(layer, Dropout):  # a float64 generator would draw other masks
            twin.layers[i] = _FixedDropout(layer.cache)
    y64 = y_true.double() if y_true.is_floating_point() else y_true
    named = list(zip(names, layers, hand, auto, strict=True))
    return named, _Problem(list(twin.parameters()),
                           lambda: loss_of(twin, x.double(), y64).item())


class _FixedDropout(Layer):
    """Dropout with the masks the hand-written pass drew (None: the identity), in any dtype."""

    layer_backward = staticmethod(dropout_backward)

    def __init__(self, mask: Tensor | None) -> None:
        super().__init__()
        self.mask = mask

    def layer_forward(self, x: Tensor):
        mask = None if self.mask is None else self.mask.to(x.dtype)
        return (x if mask is None else x * mask), mask


def _copy(net: Sequential, dtype: torch.dtype | None) -> Sequential:
    twin = copy.deepcopy(net)
    for p in twin.parameters():
        p.grad = None
    return twin if dtype is None else twin.to(dtype)


def _refuse_all_zero(named: Named, loss: str) -> None:
    """A problem whose every gradient is 0 checks nothing: ValueError rather than a pass."""
    if all(not g.any() for _, _, hand, auto in named for g in (hand, auto)):
        raise ValueError(f"every gradient of this {loss} problem is exactly 0 (hand-written "
                         "and autograd): nothing would be checked; give the network more "
                         "outputs or other inputs")


@dataclass
class _Problem:
    """The float64 parameters (in the report's order) and the loss at their current values,
    on which the finite differences are taken."""

    params: list[Tensor]
    loss_at: Callable[[], float]

    def compare(self, param: Tensor, hand: Tensor, ref: Tensor, max_entries: int,
                gen: torch.Generator, worst: int, tolerance: float, hand_floor: float = 0.0,
                ) -> tuple[float, int, int, list[Entry]]:
        """(max relative error, entries checked, kinks skipped, worst entries) of `hand`
        against central differences of `param`; `hand_floor`: the round-off of `hand` in
        its own dtype, which the float64 differences do not carry."""
        at = abs(self.loss_at())
        # a difference's round-off, eps·|L| / h, a tenth of the tolerance at this floor
        floor = max(1e-3 * ref.abs().max().item(),
                    10 * EPS64 * max(at, 1.0) / (STEP * tolerance))
        kept, numeric = [], []
        for i in _sample(param.numel(), max_entries, gen):
            value = self.central_difference(param, i, tolerance, floor, at)
            if value is not None:
                kept.append(i)
                numeric.append(value)
        skipped = min(param.numel(), max_entries) - len(kept)
        if not kept:
            return 0.0, 0, skipped, []
        picked = hand.reshape(-1)[torch.tensor(kept)].double()
        num = torch.tensor(numeric, dtype=torch.float64, device=picked.device)
        errors = relative_errors(picked, num, scale=ref, floor=max(floor, hand_floor))
        entries = [Entry(_unravel(kept[j], tuple(param.shape)), picked[j].item(), numeric[j],
                         errors[j].item())
                   for j in torch.argsort(errors, descending=True)[:worst].tolist()]
        return errors.max().item(), len(kept), skipped, entries

    @torch.no_grad()
    def central_difference(self, param: Tensor, i: int, tolerance: float, floor: float,
                           at: float) -> float | None:
        """(L(θ_i + h) - L(θ_i - h)) / 2h, or None when a kink lies within the step.

        A kink at t in (-h, h), where the slope jumps by Δ, moves the difference with step h
        from the mean slope by Δ·t / 2h and the one with step h/2 by twice that; at t = 0
        both are off by Δ / 2 but the one-sided slopes differ by Δ. A smooth loss changes
        either gap by O(h²) only (the one-sided one after removing its h·L'' term). An entry
        whose gap is over the tolerance is skipped; `at` = L(θ). The skip never looks at the
        hand-written value, so it cannot hide a wrong gradient."""
        index = _unravel(i, tuple(param.shape))  # works whatever the strides
        old = param[index].item()
        values = []
        for delta in (STEP, -STEP, STEP / 2, -STEP / 2):
            param[index] = old + delta
            values.append(self.loss_at())
        param[index] = old
        up, down, half_up, half_down = values
        full, half = (up - down) / (2 * STEP), (half_up - half_down) / STEP
        jump = 4 * (half_up - 2 * at + half_down) / STEP - (up - 2 * at + down) / STEP
        if max(abs(full - half), abs(jump)) > tolerance * max(abs(full), floor):
            return None
        return full


def _sample(n: int, k: int, gen: torch.Generator) -> list[int]:
    """All indices when n <= k, else k distinct ones drawn by `gen`, sorted."""
    if n <= k:
        return list(range(n))
    return sorted(torch.randperm(n, generator=gen)[:k].tolist())


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(i % size)
        i //= size
    return tuple(reversed(out))
