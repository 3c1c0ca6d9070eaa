"""The classic mistakes of the MLP exercise, as the gradients they produce: for each case,
the float64 truth (autograd on the float32 weights the child got) and what a backward pass
with each mistake returns, for the judge (`judge.py`) to name the one a wrong layer matches.

The mistakes, in the order they are tried (each per tensor: a tensor either is right or
matches the mistake):

| kind        | the submission's gradient                                              |
|-------------|------------------------------------------------------------------------|
| zero        | all zeros: not computed                                                 |
| wrong_sign  | the negative of the truth                                               |
| transposed  | dL_dwᵀ (shows on square layers; elsewhere the shape gives it away)      |
| mean        | the truth / N: a mean over the batch instead of the sum                 |
| batch_sum   | dL/da summed over the batch before going down a layer                   |
| activation  | f' taken at a[l] instead of z[l], f' left out, f instead of f', or the  |
|             | hidden layers' f' on the output layer                                   |
| scale       | the truth times one constant, within float32 rounding (a missing 2 …)   |
| values      | none of these                                                           |

`scale` and `values` are not gradients of their own: the judge fits them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from handgrad.check.reference import autograd_reference
from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP
from handgrad.grade.cases import CASES, Case

Tensor = torch.Tensor
Pairs = list[tuple[Tensor, Tensor]]
FLOOR = 1e-6  # the scale below which an error is not relative: FLOOR × the largest entry


@dataclass
class Truth:
    """A case as the judge sees it: the float32 weights the child got, the float64 truth and
    the gradients of each classic mistake."""

    case: Case
    weights: Pairs
    reference: Pairs
    variants: dict[str, Pairs]
    floor: float


@functools.cache
def truth(index: int, loss: str, salt: int = 0) -> Truth:
    """The truth of CASES[index] under `loss` and the secret `salt` (computed once)."""
    case = CASES[index]
    problem = case.problem(loss, salt)
    weights = [(W.detach().clone(), b.detach().clone())
               for W, b in problem.model.params_by_layer()]
    model = problem.model.copy_as(torch.float64)
    x, y = problem.x.double(), problem.y_true.double()
    reference = autograd_reference(model, x, y, loss)
    variants = {name: _backward_variant(model, x, y, loss, **kw)
                for name, kw in VARIANTS.items()}
    top = max(t.abs().max().item() for pair in reference for t in pair)
    return Truth(case, weights, reference, variants, FLOOR * max(top, 1e-30))


VARIANTS = {
    "batch_sum": {"batch_sum": True},
    "activation at a": {"derivative": "a"},
    "activation missing": {"derivative": "none"},
    "activation f": {"derivative": "f"},
    "activation on output": {"output": "hidden"},
}


@torch.no_grad()
def _backward_variant(model: MLP, x: Tensor, y: Tensor, loss: str, batch_sum: bool = False,
                      derivative: str = "z", output: str = "own") -> Pairs:
    """A backward pass with one classic mistake switched on, on a batch (N, D).
    derivative: "z" (right), "a" (f' at a), "none" (no f'), "f" (f(z) in place of f'(z));
    output "hidden": the last layer multiplied by the hidden layers' f'(z) in place of its
    own (an activation derivative where the layer has none, when its activation is the
    identity)."""
    model(x.reshape(-1, x.shape[-1]))
    dL_da = get_loss(loss).grad(model.a[model.L], y.reshape(model.a[model.L].shape))
    grads = {}
    # A loop of its own, not engine.backprop's: it makes the students' mistakes on purpose.
    for l in range(model.L, 0, -1):
        z, a = model.z[l], model.a[l]
        df = model.df[1] if output == "hidden" and l == model.L else model.df[l]
        factor = {"z": df(z), "a": df(a), "none": 1.0, "f": a}[derivative]
        dL_dz = dL_da * factor
        grads[l] = (dL_dz.T @ model.a[l - 1], dL_dz.sum(0))
        dL_da = dL_dz @ model.weight(l)
        if batch_sum:
            dL_da = dL_da.sum(0, keepdim=True).expand_as(dL_da)
    return [grads[l] for l in range(1, model.L + 1)]


def candidates(truth: Truth, l: int, want: tuple) -> Iterator[tuple[str, tuple]]:
    """(kind, (dL_dw, dL_db)) of each classic mistake on layer l (1-based), in the order
    they are tried; `want` is the layer's true pair."""
    w, b = want
    yield "zero", (torch.zeros_like(w), torch.zeros_like(b))
    yield "wrong_sign", (-w, -b)
    if w.shape[0] == w.shape[1]:
        yield "transposed", (w.T, b)
    if truth.case.samples > 1:
        yield "mean", (w / truth.case.samples, b / truth.case.samples)
    for name, pairs in truth.variants.items():
        yield name, pairs[l - 1]


def named(kind: str, where: str) -> tuple[str, str]:
    """(the kind a diagnosis gives, its detail) of a mistake found on the tensors `where`."""
    details = {
        "zero": f"{where}: all zeros",
        "wrong_sign": f"{where}: the negative of the gradient",
        "transposed": f"{where}: the transpose of the gradient",
        "mean": f"{where}: the gradient divided by the batch size N",
        "batch_sum": f"{where}: dL/da was summed over the batch above this layer",
        "activation at a": f"{where}: the activation derivative taken at a[l], not z[l]",
        "activation missing": f"{where}: the activation derivative left out",
        "activation f": f"{where}: multiplied by f(z) instead of its derivative f'(z)",
        "activation on output": f"{where}: multiplied by the hidden layers' activation "
                                "derivative, on a layer whose activation is not theirs (the "
                                "output layer's, often the identity: no derivative to apply)",
    }
    return ("activation" if kind.startswith("activation") else kind), details[kind]
