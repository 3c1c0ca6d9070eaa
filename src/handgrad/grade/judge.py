"""Judging what a submission filled, against autograd, in the grader's own process: the
verdict on each layer (`judge_layer`, naming the classic mistake of `mistakes.py` it
matches), on each case and the whole submission (`judge_outputs`: untrusted data, checked
here), and the cases' secret salt (`case_salt`: kept only when every diagnosis is
independent of it).

Errors are relative to the true gradient's scale: err(g, r) = max|g - r| / max(max|r|, floor),
floor = 1e-6 × the largest true gradient entry of the case. The cases are float32 (the
exercise's dtype), the truth float64 autograd on the same weights:

- PASS_TOL = 1e-4: float32 rounding of a right answer stays below 1e-5 on every case (tested).
- A wrong layer is named after a classic mistake when it matches that mistake's gradient
  within MATCH_TOL = 1e-3, and only on a case where that mistake's gradient differs from the
  truth by at least SEPARATION = 1e-2 in that tensor: on a case where two kinds give the same
  numbers (N = 1 makes `batch_sum` exact, ReLU makes f'(a) = f'(z)) neither is named.
- Otherwise `scale` when the layer is the truth times one constant (within float32
  rounding), else `values`.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import Any

import torch

from handgrad.engine.backprop import backpropagation as library_backprop
from handgrad.grade.cases import CASES
from handgrad.grade.mistakes import Truth, candidates, named, truth
from handgrad.grade.result import CaseResult, CheckResult, LayerResult
from handgrad.grade.sandbox import server

Tensor = torch.Tensor
PASS_TOL, MATCH_TOL, SEPARATION = 1e-4, 1e-3, 1e-2


def err(got: Tensor, want: Tensor, floor: float) -> float:
    """max|got - want| / max(max|want|, floor)."""
    scale = max(want.abs().max().item(), floor) if want.numel() else floor
    return (got - want).abs().max().item() / scale if got.numel() else 0.0


def check_entry(value: dict, want: Tensor, name: str, layer_dtype: torch.dtype) -> tuple | None:
    """(kind, detail) when the captured `value` of dL_dw[l] / dL_db[l] cannot be compared
    with the truth `want`: missing, not a torch tensor, wrong shape, dtype, NaN or inf."""
    kind = value.get("type")
    if kind == "missing":
        return "missing", _missing(name, value.get("keys") or [])
    if kind == "not_dict":
        container = name.split("[")[0]
        return "not_tensor", f"model.{container} is not a dict: store into the model's dict"
    if kind != "tensor":
        what = "a numpy array" if kind == "numpy.ndarray" else f"a {str(kind)[:80]}"
        return "not_tensor", f"{name} is {what}, not a dense torch tensor on the CPU"
    shape, want_shape = tuple(value.get("shape", ())), tuple(want.shape)
    if shape != want_shape:
        transposed = len(want_shape) == 2 and shape == want_shape[::-1]
        return ("transposed" if transposed else "shape"), (
            f"{name} has shape {shape}; it must be exactly {want_shape}")
    t = value.get("value")
    if t is None:
        return "shape", f"{name} is too large to read back"
    if not _plain(t) or tuple(t.shape) != want_shape:
        return "not_tensor", f"{name} is not a dense torch tensor on the CPU"
    if t.dtype != layer_dtype:
        return "dtype", (f"{name} is {str(t.dtype).replace('torch.', '')}; the weights are "
                         f"{str(layer_dtype).replace('torch.', '')}")
    if not torch.isfinite(t).all():
        return "nan", f"{name} contains NaN or inf"
    return None


def _plain(t: object) -> bool:
    """A dense tensor on the CPU (what the child sends; a forged result may hold others)."""
    return (type(t) is Tensor and t.layout == torch.strided and t.device.type == "cpu"
            and not t.is_meta)


def _missing(name: str, keys: list) -> str:
    """What a missing entry's dict holds instead, when that explains it."""
    key = name.split("[")[1].rstrip("]")
    if repr(key) in keys:
        return f"{name} was stored under the string key '{key}', not the number {key}"
    if "0" in keys:
        return f"{name} was not set, but [0] was: layers are numbered 1 to L"
    return f"{name} was not set"


def judge_layer(truth: Truth, l: int, dw: dict, db: dict) -> LayerResult:
    """The verdict on layer l (1-based) of one case."""
    want_w, want_b = truth.reference[l - 1]
    dtype = truth.weights[l - 1][0].dtype
    for value, want, name in ((dw, want_w, f"dL_dw[{l}]"), (db, want_b, f"dL_db[{l}]")):
        problem = check_entry(value, want, name, dtype)
        if problem is not None:
            return LayerResult(l, None, None, *problem)
    got = (dw["value"].double(), db["value"].double())
    want = (want_w, want_b)
    errors = [err(g, w, truth.floor) for g, w in zip(got, want, strict=True)]
    if max(errors) <= PASS_TOL:
        return LayerResult(l, *errors, "ok")
    kind, detail = _kind(truth, l, got, want, errors)
    return LayerResult(l, *errors, kind, detail)


def _kind(truth: Truth, l: int, got: tuple, want: tuple, errors: list[float]) -> tuple:
    wrong = [i for i in (0, 1) if errors[i] > PASS_TOL]
    names = ("dL_dw", "dL_db")
    where = " and ".join(f"{names[i]}[{l}]" for i in wrong)
    for kind, candidate in candidates(truth, l, want):
        if all(_matches(got[i], candidate[i], want[i], truth.floor) for i in wrong):
            return named(kind, where)
    scale = _fitted_scale(got, want, wrong)
    if scale is not None and all(  # one factor for every entry, up to float32 rounding
            err(scale * want[i], want[i], truth.floor) >= SEPARATION
            and err(got[i], scale * want[i], truth.floor) <= PASS_TOL for i in wrong):
        return "scale", f"{where} are the true gradient times {scale:.4g}"
    return "values", f"{where} are wrong (error {max(errors):.2g})"


def _matches(got: Tensor, candidate: Tensor, want: Tensor, floor: float) -> bool:
    """got is `candidate`, and `candidate` is far enough from the truth to tell them apart."""
    return (err(candidate, want, floor) >= SEPARATION
            and err(got, candidate, floor) <= MATCH_TOL)


def _fitted_scale(got: tuple, want: tuple, wrong: list[int]) -> float | None:
    g = torch.cat([got[i].reshape(-1) for i in wrong])
    w = torch.cat([want[i].reshape(-1) for i in wrong])
    denominator = (w @ w).item()
    return None if denominator == 0 else (g @ w).item() / denominator


# The verdict on a whole submission: what it left on each case, and the salt that makes
# the cases secret.

def case_salt(losses: tuple[str, ...]) -> int:
    """This process's secret salt for the cases' weights, inputs and targets: drawn at
    random, never sent to a child, and redrawn unless handgrad's own float32 backward pass
    is within PASS_TOL / 10 of the truth on every case of `losses` (right work must always
    pass) and every classic mistake is exact or well separated there (`_separated`)."""
    server.start()  # forked before the salt exists, so that no child can find it in memory
    while not _SALT or not all(_salt_fits(_SALT[-1], loss) for loss in losses):
        _SALT.append(secrets.randbelow(2**61) + 1)
    return _SALT[-1]


_SALT: list[int] = []


@functools.cache
def _salt_fits(salt: int, loss: str) -> bool:
    return all(_rounding_ok(i, loss, salt) for i in range(len(CASES)))


def _rounding_ok(index: int, loss: str, salt: int) -> bool:
    t, p = truth(index, loss, salt), CASES[index].problem(loss, salt)
    with torch.no_grad():
        library_backprop(p.model, p.y_true, p.model(p.x), loss)
    rounding = all(err(got.double(), want, t.floor) <= PASS_TOL / 10
                   for l in range(1, p.model.L + 1)
                   for got, want in zip((p.model.dL_dw[l], p.model.dL_db[l]),
                                        t.reference[l - 1], strict=True))
    return rounding and _separated(t)


def _separated(t: Truth) -> bool:
    """Each classic mistake is either invisible on the case or SEPARATION away from the
    truth (so that a diagnosis names it, whatever the salt)."""
    return all(e <= 1e-9 or e >= SEPARATION for e in variant_errors(t))


def variant_errors(t: Truth) -> list[float]:
    """err of each classic mistake's tensors against the truth, on the layers where the
    mistake can be named: all of them, but for "activation on output", named on the last
    layer only (below it, the gradients are wrong because the last layer is)."""
    out = []
    for name, pairs in t.variants.items():
        first = len(pairs) - 1 if name == "activation on output" else 0
        out += [err(got, want, t.floor) for l in range(first, len(pairs))
                for got, want in zip(pairs[l], t.reference[l], strict=True)]
    return out


def judge_outputs(outputs: list, loss: str, allow_autograd: bool, salt: int = 0) -> CheckResult:
    """The verdict on what the function left on each case and loss (untrusted data, checked
    here); `loss` is one name or several joined by commas, in the order they ran."""
    losses = loss.split(",")
    if len(outputs) != len(CASES) * len(losses):
        return CheckResult(loss, [], error="the submission returned results for "
                           f"{len(outputs)} of {len(CASES) * len(losses)} cases",
                           error_kind="unreadable")
    cases = [_judge_case(i % len(CASES), out, losses[i // len(CASES)], allow_autograd, salt)
             for i, out in enumerate(outputs)]
    if len(losses) > 1:
        for c in cases:
            c.show_loss = True
    return CheckResult(loss, cases, wrong_digest=_wrong_digest(outputs, cases))


def _wrong_digest(outputs: list, cases: list[CaseResult]) -> str:
    """SHA-256 (16 hex digits) of the gradients left on the cases judged wrong, "" when
    none: two submissions with the same digest made the same mistake with the same numbers."""
    h, found = hashlib.sha256(), False
    for out, case in zip(outputs, cases, strict=True):
        if case.passed or not case.layers:
            continue
        for entry in out["dw"] + out["db"]:
            value = entry.get("value")
            if _plain(value):
                h.update(value.contiguous().numpy().tobytes())
                found = True
    return h.hexdigest()[:16] if found else ""


def _judge_case(index: int, out: Any, loss: str, allow_autograd: bool,
                salt: int) -> CaseResult:
    """The verdict on one case; results it cannot read (a forged result file holds
    anything torch.load accepts) fail the case, they never crash the grader."""
    try:
        return _judge_read_case(index, out, loss, allow_autograd, salt)
    except Exception as e:  # untrusted data that passed the shape checks but not the math
        result = CaseResult(CASES[index], loss=loss)
        result.error = f"the case's results could not be read ({type(e).__name__})"
        result.error_kind = "unreadable"
        return result


def _judge_read_case(index: int, out: Any, loss: str, allow_autograd: bool,
                     salt: int) -> CaseResult:
    t = truth(index, loss, salt)
    result = CaseResult(t.case, loss=loss)
    if not isinstance(out, dict) or ("error" not in out and not _well_formed(out, t)):
        result.error, result.error_kind = "the case's results could not be read", "unreadable"
    elif "error" in out:  # MemoryError: what the address-space limit makes of an allocation
        text = str(out["error"])[:2000]
        result.error, result.error_kind = text, ("memory" if text.startswith("MemoryError")
                                                 else "error")
    elif (change := _model_change(out["params"], t)) is not None:
        result.error, result.error_kind = change, "modified"
    elif out.get("autograd") != [] and not allow_autograd:
        used = out["autograd"] if isinstance(out.get("autograd"), list) else ["autograd"]
        result.error = "the function used " + " and ".join(map(str, used))[:300]
        result.error_kind = "autograd"
    else:
        result.layers = [judge_layer(t, l, out["dw"][l - 1], out["db"][l - 1])
                         for l in range(1, len(t.weights) + 1)]
        _explain_missing(result, out)
    return result


def _explain_missing(result: CaseResult, out: dict) -> None:
    """Say where the gradients went when they are not in model.dL_dw / dL_db."""
    returned, grad_set = out.get("returned"), out.get("grad_set") is True
    for layer in result.layers:
        if layer.kind == "missing" and isinstance(returned, str):
            layer.detail += (f" (the function returned a {returned[:40]}: it must store the "
                             "gradients in model.dL_dw and model.dL_db)")
        elif layer.kind == "missing" and grad_set:
            layer.detail += (" (gradients were put in the parameters' .grad: store them in "
                             "model.dL_dw and model.dL_db)")


def _well_formed(out: dict, t: Truth) -> bool:
    L = len(t.weights)
    return (all(isinstance(out.get(k), list) and len(out[k]) == L for k in ("dw", "db"))
            and all(isinstance(v, dict) for k in ("dw", "db") for v in out[k])
            and isinstance(out.get("params"), dict))


def _model_change(params: dict, t: Truth) -> str | None:
    """What the call changed in the model's layers, weights or biases, or None."""
    keys = [str(l) for l in range(1, len(t.weights) + 1)]
    if sorted(params) != sorted(keys):
        return f"the function changed the model's layers (now {sorted(params)})"
    for key, (W, b) in zip(keys, t.weights, strict=True):
        layer = params[key]
        if not isinstance(layer, dict) or layer.get("type") != "Linear":
            return f"the function replaced layer {key}"
        for name, want in (("weights", W), ("biases", b)):
            got = layer.get("W" if name == "weights" else "b")
            same = (_plain(got) and got.shape == want.shape
                    and got.dtype == want.dtype and torch.equal(got, want))
            if not same:
                return f"the function modified the {name} of layer {key}"
    return None
