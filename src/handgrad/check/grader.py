"""`check_backprop`: grade a student's `backpropagation(model, y_true, y_pred)` against autograd.

The function is run on handgrad MLPs of several depths, activations and batch sizes. Each
`dL_dw[l]`, `dL_db[l]` it fills is compared with autograd; a wrong one is diagnosed by
matching it against the classic mistakes, each computed exactly:

| kind           | what the student did                                             |
|----------------|------------------------------------------------------------------|
| missing        | left dL_dw[l] / dL_db[l] unset                                   |
| shape          | a tensor of the wrong shape                                      |
| transposed     | dL_dw[l] as a[l-1]ᵀ dL_dz (shape (H_{l-1}, H_l))                 |
| batch_sum      | summed dL/da over the batch before going down a layer           |
| wrong_sign     | the negative of the gradient                                     |
| scale          | off by a constant factor (a missing 2, a stray 1/N …)            |
| activation     | applied the activation derivative at the wrong place (at a[l]    |
|                | instead of z[l]), or not at all                                  |
| values         | none of the above                                                |
"""

from __future__ import annotations

import importlib.util
import linecache
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP
from handgrad.run.metrics import random_targets

Tensor = torch.Tensor
TOLERANCE = 1e-8
CASES = (  # sizes, activation, batch sizes
    ([5, 3], "relu", (1, 7)),
    ([6, 5, 3], "relu", (1, 7)),
    ([6, 5, 4, 3], "tanh", (1, 7)),
    ([4, 6, 5, 4, 2], "sigmoid", (1, 7)),
)
HINTS = {
    "missing": "the function did not fill this entry of model.dL_dw / model.dL_db",
    "shape": "dL_dw[l] must have the shape of fc[str(l)].weight (H_l, H_{l-1}), dL_db[l] (H_l,)",
    "transposed": "use dL_dz.T @ a[l-1] (H_l, H_{l-1}), not a[l-1].T @ dL_dz",
    "batch_sum": "right for one sample, wrong for a batch: keep dL/da one row per sample "
                 "(dL_da = dL_dz @ W); sum over the batch only in dL_dw and dL_db",
    "wrong_sign": "the gradient has the wrong sign: dL/dy is y_pred - y_true, not y_true - y_pred",
    "scale": "off by a constant factor: check the loss derivative (2 for sse, 1/N for means)",
    "activation": "the activation derivative is missing or applied at the wrong place: "
                  "multiply dL/da[l] by df[l](z[l]) of the same layer, before forming "
                  "dL_dw[l]",
    "values": "wrong values: compare your equations with docs/backprop.md",
}


class SubmissionError(Exception):
    """The submission cannot be run: no file, no function, or the function raised."""


@dataclass
class LayerResult:
    layer: int
    dw_error: float | None  # max relative error, None when missing or misshapen
    db_error: float | None
    kind: str  # "ok" or a key of HINTS

    @property
    def passed(self) -> bool:
        return self.kind == "ok"


@dataclass
class CaseResult:
    sizes: list[int]
    activation: str
    batch: int
    layers: list[LayerResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(layer.passed for layer in self.layers)

    @property
    def name(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} {self.activation} N={self.batch}"


@dataclass
class Diagnosis:
    case: str
    layer: int
    kind: str
    hint: str


@dataclass
class CheckResult:
    loss: str
    cases: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    def diagnosis(self) -> Diagnosis | None:
        """The first wrong layer, in backward order (L down to 1), of the first failing case;
        "batch_sum" when every batch-of-one case passes and a batch case fails."""
        failing = [c for c in self.cases if not c.passed]
        if not failing:
            return None
        case = failing[0]
        wrong = next(layer for layer in reversed(case.layers) if not layer.passed)
        kind = wrong.kind
        if all(c.passed for c in self.cases if c.batch == 1) and kind == "values":
            kind = "batch_sum"
        return Diagnosis(case.name, wrong.layer, kind, HINTS[kind])

    def rows(self) -> list[list]:
        return [[c.name, f"{l.layer}", l.dw_error, l.db_error, "ok" if l.passed else l.kind]
                for c in self.cases for l in c.layers]

    HEADERS = ("case", "layer", "dL_dw error", "dL_db error", "result")


def load_function(spec: str) -> Callable:
    """The callable named by 'FILE.py:FUNCTION' (FUNCTION defaults to backpropagation)."""
    path_text, _, name = spec.partition(":")
    name = name or "backpropagation"
    path = Path(path_text)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    module_name = f"handgrad_submission_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's own code: report their error and line
        raise SubmissionError(f"importing {path} failed: {_user_error(e, path)}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module_name]
        raise SubmissionError(f"{path} has no function {name!r}; it defines: "
                              f"{', '.join(found) or 'nothing callable'}")
    return fn


def _user_error(e: BaseException, path: Path) -> str:
    """'ErrorType: message (file, line N: source)' at the deepest frame in the user's file."""
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({path}, line {e.lineno}: {(e.text or '').strip()})"
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if Path(f.filename).resolve() == path.resolve()]
    where = ""
    if frames:
        f = frames[-1]
        source = f.line or linecache.getline(f.filename, f.lineno).strip()
        where = f" ({path}, line {f.lineno}: {source})"
    return f"{type(e).__name__}: {e}{where}"


def check_backprop(fn: Callable, loss: str = "sse", source: Path | None = None,
                   seed: int = 0) -> CheckResult:
    """Run `fn(model, y_true, y_pred)` on every case and compare with autograd (float64)."""
    get_loss(loss)
    cases = []
    for sizes, activation, batches in CASES:
        for batch in batches:
            cases.append(_run_case(fn, sizes, activation, batch, loss, source, seed))
    return CheckResult(loss, cases)


def _run_case(fn, sizes, activation, batch, loss, source, seed) -> CaseResult:
    torch.manual_seed(seed)
    model = MLP(sizes, activation=activation, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed + batch)
    x = torch.randn(batch, sizes[0], generator=gen, dtype=torch.float64)
    y_true = random_targets(loss, batch, sizes[-1], gen, torch.float64)
    reference = _reference(model, x, y_true, loss)
    with torch.no_grad():
        y_pred = model(x)
    model.dL_dw, model.dL_db = {}, {}
    try:
        with torch.no_grad():
            fn(model, y_true, y_pred)
    except Exception as e:
        where = source or Path(getattr(getattr(fn, '__code__', None), 'co_filename', '?'))
        raise SubmissionError(f"{getattr(fn, '__name__', 'function')} raised on case "
                              f"{'-'.join(map(str, sizes))} {activation} N={batch}: "
                              f"{_user_error(e, where)}") from None
    bugs = _classic_bugs(model, x, y_true, loss)
    result = CaseResult(sizes, activation, batch)
    for l in range(1, model.L + 1):
        result.layers.append(_judge_layer(model, l, reference, bugs))
    return result


def _reference(model: MLP, x: Tensor, y_true: Tensor, loss: str) -> dict[int, tuple]:
    params = [p for l in range(1, model.L + 1) for p in (model.weight(l), model.bias(l))]
    with torch.enable_grad():
        value = get_loss(loss).torch_value(model(x), y_true)
        grads = torch.autograd.grad(value, params)
    return {l: (grads[2 * l - 2], grads[2 * l - 1]) for l in range(1, model.L + 1)}


def _classic_bugs(model: MLP, x: Tensor, y_true: Tensor, loss: str) -> dict[str, dict]:
    """The gradients each classic mistake produces, computed exactly on this case."""
    with torch.no_grad():
        model(x)
    dL_dy = get_loss(loss).grad(model.a[model.L], y_true)
    return {
        "batch_sum": _backward_variant(model, dL_dy, batch_sum=True),
        "activation": _backward_variant(model, dL_dy, derivative_at="a"),
        "activation_missing": _backward_variant(model, dL_dy, derivative_at="nowhere"),
    }


@torch.no_grad()
def _backward_variant(model: MLP, dL_dy: Tensor, batch_sum: bool = False,
                      derivative_at: str = "z") -> dict:
    """A deliberately wrong backward pass: one classic mistake switched on.
    derivative_at: "z" (right), "a" (df evaluated at the activation) or "nowhere"."""
    grads, dL_da = {}, dL_dy.clone()
    for l in range(model.L, 0, -1):
        point = {"z": model.z[l], "a": model.a[l]}.get(derivative_at)
        dL_dz = dL_da if point is None else dL_da * model.df[l](point)
        grads[l] = (dL_dz.T @ model.a[l - 1], dL_dz.sum(0))
        dL_da = dL_dz @ model.weight(l)
        if batch_sum:
            dL_da = dL_da.sum(0, keepdim=True).expand_as(dL_da)
    return grads


def _judge_layer(model: MLP, l: int, reference: dict, bugs: dict) -> LayerResult:
    got_w, got_b = model.dL_dw.get(l), model.dL_db.get(l)
    want_w, want_b = reference[l]
    if not isinstance(got_w, Tensor) or not isinstance(got_b, Tensor):
        return LayerResult(l, None, None, "missing")
    if got_w.shape != want_w.shape or got_b.reshape(-1).shape != want_b.shape:
        kind = "transposed" if got_w.shape == want_w.T.shape else "shape"
        return LayerResult(l, None, None, kind)
    got_w, got_b = got_w.double(), got_b.reshape(-1).double()
    dw, db = _rel(got_w, want_w), _rel(got_b, want_b)
    if dw <= TOLERANCE and db <= TOLERANCE:
        return LayerResult(l, dw, db, "ok")
    return LayerResult(l, dw, db, _kind_of_error(got_w, got_b, want_w, want_b, l, bugs))


def _kind_of_error(got_w, got_b, want_w, want_b, l, bugs) -> str:
    got = torch.cat([got_w.reshape(-1), got_b])
    want = torch.cat([want_w.reshape(-1), want_b])
    if _rel(got, -want) <= TOLERANCE:
        return "wrong_sign"
    for kind in ("batch_sum", "activation", "activation_missing"):
        bug_w, bug_b = bugs[kind][l]
        if _rel(got, torch.cat([bug_w.reshape(-1), bug_b])) <= 1e-6:
            return "activation" if kind.startswith("activation") else kind
    scale = (got @ want) / (want @ want).clamp_min(1e-300)
    if _rel(got, scale * want) <= 1e-6:
        return "scale"
    return "values"


def _rel(got: Tensor, want: Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()
