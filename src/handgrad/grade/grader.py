"""Grade a hand-written `backpropagation(model, y_true, y_pred)` against autograd: the
orchestration, from a submission to its `CheckResult`.

- `grade_file(path)`: the grader of a course. The submission runs in a confined child
  (`sandbox`); this process sends it the cases and has `judge` judge what comes back.
  A failure of the grader itself raises `GraderError`: it is never the student's.
- `check_backprop(fn)`: the same cases and the same judge, with `fn` called in this process:
  for a student checking a function defined in their notebook. SystemExit and
  KeyboardInterrupt raised by `fn` become a failed result; nothing else is contained.

The cases are in `cases.py`, their truth and classic mistakes in `mistakes.py`, the judging
(and the cases' secret salt) in `judge.py`, the verdicts in `result.py`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from handgrad.engine.losses import get_loss
from handgrad.grade import mistakes, submission
from handgrad.grade.cases import CASES
from handgrad.grade.judge import case_salt, judge_outputs
from handgrad.grade.result import CheckResult
from handgrad.grade.sandbox import runner, server
from handgrad.grade.sandbox.isolate import GraderError, Limits, isolation, run_isolated
from handgrad.grade.submission import SubmissionError, read_source

__all__ = ["GraderError", "Limits", "SubmissionError", "check_backprop", "grade_file",
           "load_function", "load_target"]


def loss_names(loss: str | Sequence[str]) -> tuple[str, ...]:
    """One loss or several ("sse,mse" or a list), checked: ("sse",), ("sse", "mse") …"""
    names = tuple(loss.split(",")) if isinstance(loss, str) else tuple(loss)
    if not names:
        raise ValueError("give at least one loss")
    return tuple(dict.fromkeys(get_loss(n).name for n in names))


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
            mistakes.truth(i, loss, salt)
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
        return CheckResult(loss, [], error=f"the submission exited with code {e.code} "
                           "before returning gradients", error_kind="exited",
                           seconds=time.perf_counter() - start)
    except KeyboardInterrupt:
        return CheckResult(loss, [], error="the function was interrupted "
                           "(KeyboardInterrupt)", error_kind="exited",
                           seconds=time.perf_counter() - start)
    result = judge_outputs(outputs, loss, allow_autograd, salt)
    result.isolation = {"process": False, "no_network": False, "read_only_files": False,
                        "own_processes": False}
    result.seconds = time.perf_counter() - start
    return result


def grade_file(path: str | Path, function: str = "backpropagation",
               loss: str | Sequence[str] = "sse", limits: Limits | None = None,
               allow_autograd: bool = False, importable: bool = True) -> CheckResult:
    """Grade the submission at `path` (.py or .ipynb) in a child process. Raises
    SubmissionError only when `path` cannot be read; everything the code does is a result.
    importable: whether the other modules of its folder may be imported (False for one file
    of a folder of single-file submissions: it must not import the others')."""
    server.start()  # before anything of a submission or a secret is in this process
    path = Path(path)
    losses = loss_names(loss)
    loss = ",".join(losses)
    chunks = read_source(path)
    salt = case_salt(losses)
    folder = path.resolve().parent if importable else None
    outcome = run_isolated(chunks, folder, function, _payload(losses, salt),
                           limits or Limits(), submission=folder or path.resolve())
    if outcome.status == "ok":
        result = judge_outputs(outcome.results, loss, allow_autograd, salt)
    else:
        result = CheckResult(loss, [], error=outcome.error or outcome.status,
                             error_kind=outcome.status)
    result.submission = str(path)
    result.output = outcome.output
    result.seconds = outcome.seconds
    result.isolation = {"process": True, **isolation(outcome.confined),
                        "exit_code": outcome.exit_code}
    return result


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
