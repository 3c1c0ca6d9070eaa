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

ReLU kinks: a difference whose two evaluations put some pre-activation of a relu or
leaky_relu layer on different sides of 0 is meaningless; such entries are skipped, counted
and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from handgrad.check.reference import autograd_reference
from handgrad.engine.backprop import backpropagation
from handgrad.engine.losses import Loss, get_loss
from handgrad.engine.model import MLP

Tensor = torch.Tensor
KINKED = ("relu", "leaky_relu")
STEP = 1e-5
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


def relative_errors(hand: Tensor, ref: Tensor, scale: Tensor | None = None) -> Tensor:
    """|g - r| / max(|g|, |r|, 1e-3 max|scale|), elementwise; `scale` defaults to `ref`."""
    scale = ref if scale is None else scale
    floor = max(1e-3 * scale.abs().max().item(), torch.finfo(ref.dtype).tiny)
    return (hand - ref).abs() / torch.clamp(torch.maximum(hand.abs(), ref.abs()), min=floor)


def _refuse_all_zero(hand: dict, auto: dict, loss: str) -> None:
    """A problem whose every gradient is 0 checks nothing: ValueError rather than a pass."""
    if all(not g.any() for pair in (*hand.values(), *auto.values()) for g in pair):
        raise ValueError(f"every gradient of this {loss} problem is exactly 0 (hand-written "
                         "and autograd): nothing would be checked; give the network more "
                         "outputs or other inputs")


def gradcheck(model: MLP, x: Tensor, y_true: Tensor, loss: str = "cross_entropy",
              max_entries: int = 30, seed: int = 0, worst: int = 3) -> GradcheckReport:
    """Check `backpropagation` on `model` for the batch x (N, D) and targets y_true."""
    dtype = model.weight(1).dtype
    if dtype not in SETTINGS:
        raise ValueError(f"gradcheck supports float32 and float64, got {dtype}")
    numeric_tol, autograd_tol = SETTINGS[dtype]
    loss_fn = get_loss(loss)
    with torch.no_grad():
        y_pred = model(x)
    backpropagation(model, y_true, y_pred, loss)
    hand = {l: (model.dL_dw[l].clone(), model.dL_db[l].clone()) for l in range(1, model.L + 1)}
    auto = dict(enumerate(autograd_reference(model, x, y_true, loss), start=1))
    _refuse_all_zero(hand, auto, loss)
    problem = _Problem(model, x, y_true, loss_fn)
    if dtype != torch.float64:
        problem = _Problem(model.copy_as(torch.float64), x.double(),
                           y_true.double() if y_true.is_floating_point() else y_true, loss_fn)
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for l in range(1, model.L + 1):
        for kind, param, i in (("W", problem.model.weight(l), 0), ("b", problem.model.bias(l), 1)):
            autograd_error = relative_errors(hand[l][i], auto[l][i]).max().item()
            numeric_error, checked, kinks, entries = problem.compare(
                param, hand[l][i], auto[l][i], max_entries, gen, worst)
            passed = autograd_error <= autograd_tol and numeric_error <= numeric_tol
            tensors.append(TensorCheck(f"{kind}{l}", l, tuple(param.shape), autograd_error,
                                       numeric_error, checked, kinks, entries, passed))
    report = GradcheckReport(str(dtype).replace("torch.", ""), STEP, numeric_tol, autograd_tol,
                             tensors)
    if dtype == torch.float32:
        report.warnings.append("float32: compared with autograd at 1e-3 and with float64 finite "
                               "differences at 2e-3; use --dtype float64 for the sharp check")
    skipped = sum(t.kinks_skipped for t in tensors)
    if skipped:
        report.warnings.append(f"{skipped} sampled entries skipped: their finite difference "
                               "crossed a ReLU kink")
    return report


@dataclass
class _Problem:
    """The float64 network, batch and loss the finite differences are taken on."""

    model: MLP
    x: Tensor
    y_true: Tensor
    loss_fn: Loss

    def compare(self, param: Tensor, hand: Tensor, ref: Tensor, max_entries: int,
                gen: torch.Generator, worst: int) -> tuple[float, int, int, list[Entry]]:
        """(max relative error, entries checked, kinks skipped, worst entries) of `hand`
        against central differences of `param`."""
        kept, numeric = [], []
        for i in _sample(param.numel(), max_entries, gen):
            value = self.central_difference(param, i)
            if value is not None:
                kept.append(i)
                numeric.append(value)
        skipped = min(param.numel(), max_entries) - len(kept)
        if not kept:
            return 0.0, 0, skipped, []
        picked = hand.reshape(-1)[torch.tensor(kept)].double()
        num = torch.tensor(numeric, dtype=torch.float64, device=picked.device)
        errors = relative_errors(picked, num, scale=ref)  # floor from the whole tensor
        entries = [Entry(_unravel(kept[j], tuple(param.shape)), picked[j].item(), numeric[j],
                         errors[j].item())
                   for j in torch.argsort(errors, descending=True)[:worst].tolist()]
        return errors.max().item(), len(kept), skipped, entries

    @torch.no_grad()
    def central_difference(self, param: Tensor, i: int) -> float | None:
        """(L(θ_i + h) - L(θ_i - h)) / 2h, or None when the two sides straddle a ReLU kink."""
        index = _unravel(i, tuple(param.shape))  # works whatever the strides
        old = param[index].item()
        values, signs = [], []
        for delta in (STEP, -STEP):
            param[index] = old + delta
            values.append(self.loss_fn.value(self.model(self.x), self.y_true).item())
            signs.append([self.model.z[l] > 0 for l, act in self.model.act.items()
                          if act.name in KINKED])
        param[index] = old
        if any(not torch.equal(p, m) for p, m in zip(*signs, strict=True)):
            return None
        return (values[0] - values[1]) / (2 * STEP)


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
