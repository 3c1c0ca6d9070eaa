"""Grade a hand-written `backpropagation(model, y_true, y_pred)` against autograd.

- `grade_file(path)`: the grader of a course. The submission runs in a child process
  (`sandbox`); this process only sends it the cases and judges the tensors it sends back.
- `check_backprop(fn)`: the same cases and the same judge, with `fn` called in this process:
  for a student checking a function defined in their notebook. SystemExit and
  KeyboardInterrupt raised by `fn` become a failed result; nothing else is contained.

The cases are in `cases.py`, the judging in `judge.py`, the verdicts in `result.py`.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from handgrad.engine.backprop import backpropagation as library_backprop
from handgrad.engine.losses import get_loss
from handgrad.grade import judge, submission
from handgrad.grade.cases import CASES
from handgrad.grade.result import CaseResult, CheckResult
from handgrad.grade.sandbox import runner
from handgrad.grade.sandbox.isolate import Limits, run_isolated
from handgrad.grade.submission import SubmissionError, read_source

__all__ = ["Limits", "SubmissionError", "check_backprop", "grade_file", "load_function",
           "load_target"]


def loss_names(loss: str | Sequence[str]) -> tuple[str, ...]:
    """One loss or several ("sse,mse" or a list), checked: ("sse",), ("sse", "mse") …"""
    names = tuple(loss.split(",")) if isinstance(loss, str) else tuple(loss)
    if not names:
        raise ValueError("give at least one loss")
    return tuple(dict.fromkeys(get_loss(n).name for n in names))


def case_salt(losses: tuple[str, ...]) -> int:
    """This process's secret salt for the cases' weights, inputs and targets: drawn at
    random, never sent to a child, and redrawn unless handgrad's own float32 backward pass
    is within PASS_TOL / 10 of the truth on every case of `losses` (right work must always
    pass) and every classic mistake is exact or well separated there (`_separated`)."""
    while not _SALT or not all(_salt_fits(_SALT[-1], loss) for loss in losses):
        _SALT.append(secrets.randbelow(2**61) + 1)
    return _SALT[-1]


_SALT: list[int] = []


@functools.cache
def _salt_fits(salt: int, loss: str) -> bool:
    return all(_rounding_ok(i, loss, salt) for i in range(len(CASES)))


def _rounding_ok(index: int, loss: str, salt: int) -> bool:
    t, p = judge.truth(index, loss, salt), CASES[index].problem(loss, salt)
    with torch.no_grad():
        library_backprop(p.model, p.y_true, p.model(p.x), loss)
    rounding = all(judge.err(got.double(), want, t.floor) <= judge.PASS_TOL / 10
                   for l in range(1, p.model.L + 1)
                   for got, want in zip((p.model.dL_dw[l], p.model.dL_db[l]),
                                        t.reference[l - 1], strict=True))
    return rounding and _separated(t)


def _separated(t: judge.Truth) -> bool:
    """Each classic mistake is either invisible on the case or SEPARATION away from the
    truth (so that a diagnosis names it, whatever the salt)."""
    truth = [x for pair in t.reference for x in pair]
    return all(e <= 1e-9 or e >= judge.SEPARATION
               for pairs in t.variants.values()
               for got, want in zip((x for pair in pairs for x in pair), truth, strict=True)
               for e in [judge.err(got, want, t.floor)])


def case_specs(losses: tuple[str, ...], salt: int) -> list[dict[str, Any]]:
    """What the function is run on: one spec a case and loss (float32 weights, x, y_true).
    With several losses the function is also given the loss's name, as a 4th argument."""
    return [{**runner.case_spec(case.problem(loss, salt), case),
             "extra": [loss] if len(losses) > 1 else []}
            for loss in losses for case in CASES]


@functools.cache
def _payload(losses: tuple[str, ...], salt: int) -> bytes:
    """The case specs as sent to a child, and every case's truth computed (once)."""
    for loss in losses:
        for i in range(len(CASES)):
            judge.truth(i, loss, salt)
    return runner.encode(case_specs(losses, salt))


def check_backprop(fn: Callable, loss: str | Sequence[str] = "sse",
                   allow_autograd: bool = False) -> CheckResult:
    """Run `fn(model, y_true, y_pred)` here on every case and judge it against autograd.
    Several losses: `fn(model, y_true, y_pred, loss_name)` on every case for each."""
    losses = loss_names(loss)
    loss = ",".join(losses)
    salt = case_salt(losses)
    start = time.perf_counter()
    source = getattr(getattr(fn, "__code__", None), "co_filename", None)
    outputs = []
    try:
        for spec in case_specs(losses, salt):
            outputs.append(runner.run_case(fn, spec, source))
    except SystemExit as e:
        return CheckResult(loss, [], f"the submission exited with code {e.code} before "
                                     "returning gradients", "exited",
                           seconds=time.perf_counter() - start)
    except KeyboardInterrupt:
        return CheckResult(loss, [], "the function was interrupted (KeyboardInterrupt)",
                           "exited", seconds=time.perf_counter() - start)
    result = judge_outputs(outputs, loss, allow_autograd, salt)
    result.isolation = {"process": False, "no_network": False, "read_only_files": False}
    result.seconds = time.perf_counter() - start
    return result


def grade_file(path: str | Path, function: str = "backpropagation",
               loss: str | Sequence[str] = "sse", limits: Limits | None = None,
               allow_autograd: bool = False, importable: bool = True) -> CheckResult:
    """Grade the submission at `path` (.py or .ipynb) in a child process. Raises
    SubmissionError only when `path` cannot be read; everything the code does is a result.
    importable: whether the other modules of its folder may be imported (False for one file
    of a folder of single-file submissions: it must not import the others')."""
    path = Path(path)
    losses = loss_names(loss)
    loss = ",".join(losses)
    chunks = read_source(path)
    salt = case_salt(losses)
    folder = path.resolve().parent if importable else None
    outcome = run_isolated(chunks, folder, function, _payload(losses, salt),
                           limits or Limits())
    if outcome.status == "ok":
        result = judge_outputs(outcome.results, loss, allow_autograd, salt)
    else:
        result = CheckResult(loss, [], outcome.error or outcome.status, outcome.status)
    result.submission = str(path)
    result.output = outcome.output
    result.seconds = outcome.seconds
    result.isolation = {"process": True, "no_network": outcome.confined.get("network", False),
                        "read_only_files": outcome.confined.get("filesystem", False),
                        "own_processes": outcome.confined.get("processes", False),
                        "exit_code": outcome.exit_code}
    return result


def judge_outputs(outputs: list, loss: str, allow_autograd: bool, salt: int = 0) -> CheckResult:
    """The verdict on what the function left on each case and loss (untrusted data, checked
    here); `loss` is one name or several joined by commas, in the order they ran."""
    losses = loss.split(",")
    if len(outputs) != len(CASES) * len(losses):
        return CheckResult(loss, [], "the submission returned results for "
                                     f"{len(outputs)} of {len(CASES) * len(losses)} cases",
                           "unreadable")
    cases = [_judge_case(i % len(CASES), out, losses[i // len(CASES)], allow_autograd, salt)
             for i, out in enumerate(outputs)]
    if len(losses) > 1:
        for c in cases:
            c.show_loss = True
    return CheckResult(loss, cases)


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
    t = judge.truth(index, loss, salt)
    result = CaseResult(t.case, loss=loss)
    if not isinstance(out, dict) or ("error" not in out and not _well_formed(out, t)):
        result.error, result.error_kind = "the case's results could not be read", "unreadable"
    elif "error" in out:
        result.error, result.error_kind = str(out["error"])[:2000], "error"
    elif (change := _model_change(out["params"], t)) is not None:
        result.error, result.error_kind = change, "modified"
    elif out.get("autograd") != [] and not allow_autograd:
        used = out["autograd"] if isinstance(out.get("autograd"), list) else ["autograd"]
        result.error = "the function used " + " and ".join(map(str, used))[:300]
        result.error_kind = "autograd"
    else:
        result.layers = [judge.judge_layer(t, l, out["dw"][l - 1], out["db"][l - 1])
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


def _well_formed(out: dict, t: judge.Truth) -> bool:
    L = len(t.weights)
    return (all(isinstance(out.get(k), list) and len(out[k]) == L for k in ("dw", "db"))
            and all(isinstance(v, dict) for k in ("dw", "db") for v in out[k])
            and isinstance(out.get("params"), dict))


def _model_change(params: dict, t: judge.Truth) -> str | None:
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
            same = (judge._plain(got) and got.shape == want.shape
                    and got.dtype == want.dtype and torch.equal(got, want))
            if not same:
                return f"the function modified the {name} of layer {key}"
    return None


def load_target(target: str) -> tuple[Path, str]:
    """'FILE[:FUNCTION]' -> (path, function name); FUNCTION defaults to backpropagation."""
    text, sep, name = target.rpartition(":")
    if not sep or not text or "/" in name or name.endswith((".py", ".ipynb")):
        text, name = target, ""
    return Path(text), name or "backpropagation"


def load_function(target: str) -> Callable:
    """The function named by 'FILE[:FUNCTION]', loaded into this process (for a student's
    own check with `check_backprop`; the course grader uses `grade_file`)."""
    path, name = load_target(target)
    return submission.load_function(
        read_source(path), name, path.resolve().parent,
        module_name=f"handgrad_submission_{abs(hash(str(path.resolve())))}")
