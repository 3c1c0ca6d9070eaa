"""Grade a class: grade its submissions in parallel (each in its own sandboxed child), keep
going past any failure, and reuse the grades of a previous run that still hold.

A rerun with the same --out reuses the grade of every submission whose files (and the
grader's settings) have not changed: their SHA-256 is kept in grades.json. Failures that may
be the machine's (a child killed by a signal, a grader error: "not_graded") are graded
again. Which paths are submissions is `collect.py`'s; the records and the files written
into --out are `gradebook.py`'s; the pairs that look alike `similar.py`'s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from handgrad.grade import judge
from handgrad.grade.cases import CASES
from handgrad.grade.collect import Submission, find_submissions
from handgrad.grade.gradebook import BatchResult, entry, read_previous, write_grades
from handgrad.grade.grader import GraderError, grade_file, loss_names
from handgrad.grade.layers import judge as layers_judge
from handgrad.grade.layers.cases import CASES as LAYER_CASES
from handgrad.grade.layers.contract import parse_functions
from handgrad.grade.layers.grader import grade_file as grade_layers
from handgrad.grade.layers.result import LayersResult
from handgrad.grade.result import CheckResult, Grade
from handgrad.grade.sandbox import server
from handgrad.grade.sandbox.isolate import Limits
from handgrad.grade.similar import code_digest
from handgrad.grade.submission import SubmissionError, read_source

RUN = os.urandom(4).hex()  # this process's run: wrong answers compare only within one


@dataclass(frozen=True)
class _Grading:
    """How one submission of an assignment is graded: grade(path, importable=…) -> its
    result; empty(error=…, error_kind=…) -> a result of the same assignment with no cases;
    the function whose definition picks the graded file of a student's folder; and the
    settings whose change regrades every submission."""

    grade: Callable[..., Grade]
    empty: Callable[..., Grade]
    function: str
    settings: dict[str, Any]

    def failed(self, error: str, kind: str) -> Grade:
        return self.empty(error=error, error_kind=kind)


def handgrad_version() -> str:
    """The installed handgrad's version (a new one regrades everything)."""
    try:
        return version("handgrad")
    except Exception:  # not installed as a distribution
        return "unknown"


def fingerprint(sub: Submission, settings: dict[str, Any]) -> str:
    """SHA-256 of the submission's files and of the grader's settings and cases."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(repr(CASES).encode() + handgrad_version().encode())
    h.update(repr((judge.PASS_TOL, judge.MATCH_TOL, judge.SEPARATION)).encode())
    for f in sub.files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def grade(paths: Sequence[str | Path], function: str = "backpropagation",
          loss: str | Sequence[str] = "sse",
          jobs: int = 2, limits: Limits | None = None, allow_autograd: bool = False,
          out: str | Path | None = None, assignment: str = "mlp",
          functions: str | Sequence[str] | None = None) -> BatchResult:
    """Grade every submission in `paths`; with `out`, reuse and write grades there.
    assignment "layers": the layer functions `functions` (all by default) are graded."""
    subs = find_submissions(paths, _folder_function(assignment, function, functions))
    previous = read_previous(Path(out)) if out is not None else {}
    entries = {e["id"]: e for e, _ in grade_iter(subs, function, loss, jobs, limits,
                                                 allow_autograd, out, assignment=assignment,
                                                 functions=functions)}
    result = BatchResult([entries[s.id] for s in subs if s.id in entries], previous)
    if out is not None:
        write_grades(Path(out), result)
    return result


def grade_iter(subs: list[Submission], function: str, loss: str | Sequence[str], jobs: int,
               limits: Limits | None, allow_autograd: bool, out: str | Path | None,
               only: Sequence[str] = (), assignment: str = "mlp",
               functions: str | Sequence[str] | None = None,
               ) -> Iterator[tuple[dict[str, Any], bool]]:
    """(entry, reused) for each submission as it finishes; reused when its grade from a
    previous run in `out` still holds. `only`: grade these ids again, whatever their
    hash, and keep every other previous grade as it is (one without is left out).
    assignment "layers": the layer functions `functions` (all by default) are graded."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    _check_ids(only, subs)
    how = _grading(assignment, function, loss, functions, limits or Limits(), allow_autograd)
    server.start()  # here, in the calling thread, before any submission is read
    previous = read_previous(Path(out)) if out is not None else {}
    todo = []
    for sub in subs:
        digest, old = fingerprint(sub, how.settings), previous.get(sub.id)
        if only and sub.id not in only:
            if old is not None:
                yield old, True
        elif (old is not None and old.get("hash") == digest and not only
              and not _may_be_transient(old)):
            yield old, True
        else:
            todo.append((sub, digest))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_grade_one, sub, digest, how) for sub, digest in todo]
        for future in as_completed(futures):
            yield future.result(), False


def _check_ids(only: Sequence[str], subs: list[Submission]) -> None:
    unknown = sorted(set(only) - {s.id for s in subs})
    if unknown:
        raise SubmissionError(f"no submission with id {unknown[0]!r}; the ids: "
                              f"{', '.join(s.id for s in subs[:10])}"
                              f"{' …' if len(subs) > 10 else ''}")


def _grading(assignment: str, function: str, loss: str | Sequence[str],
             functions: str | Sequence[str] | None, limits: Limits,
             allow_autograd: bool) -> _Grading:
    """How `assignment` ("mlp" or "layers") is graded with these settings."""
    checks = {"allow_autograd": allow_autograd, "timeout": limits.timeout,
              "memory_mb": limits.memory_mb, "cpu_s": limits.cpu}
    if assignment == "layers":
        names = parse_functions(functions)
        settings = {"assignment": "layers", "functions": list(names), **checks,
                    "cases": repr(LAYER_CASES),
                    "tolerances": [layers_judge.PASS_TOL, layers_judge.MATCH_TOL,
                                   layers_judge.SEPARATION]}
        return _Grading(functools.partial(grade_layers, functions=names, limits=limits,
                                          allow_autograd=allow_autograd),
                        functools.partial(LayersResult, names, []), names[0], settings)
    if assignment == "mlp":
        loss = ",".join(loss_names(loss))
        settings = {"function": function, "loss": loss, **checks}
        return _Grading(functools.partial(grade_file, function=function, loss=loss,
                                          limits=limits, allow_autograd=allow_autograd),
                        functools.partial(CheckResult, loss, []), function, settings)
    raise ValueError(f"unknown assignment {assignment!r}; choose from: mlp, layers")


def _may_be_transient(entry: dict[str, Any]) -> bool:
    """A failure that may be the machine's, not the code's: graded again on a rerun
    (a grader error, unreadable results, a child killed by a signal)."""
    code = (entry.get("result") or {}).get("isolation", {}).get("exit_code")
    return entry.get("kind") in ("not_graded", "internal", "unreadable") or (
        entry.get("kind") == "exited" and isinstance(code, int) and code < 0)


def _folder_function(assignment: str, function: str,
                     functions: str | Sequence[str] | None) -> str:
    """The function whose definition picks the graded file of a student's folder."""
    return parse_functions(functions)[0] if assignment == "layers" else function


def _grade_one(sub: Submission, digest: str, how: _Grading) -> dict[str, Any]:
    start = time.perf_counter()
    if sub.path is None:
        result = how.failed(f"no .py or .ipynb file in the folder defines {how.function}()",
                            "no_function")
    else:
        try:
            result = how.grade(sub.path, importable=sub.folder)
        except SubmissionError as e:
            result = how.failed(str(e), "load")
        except GraderError as e:
            result = how.failed(f"not graded: {e}", "not_graded")
        except Exception as e:  # keep grading the others; the row says what went wrong
            result = how.failed(f"not graded: grader error: {type(e).__name__}: {e}",
                                "not_graded")
    result.seconds = result.seconds or time.perf_counter() - start
    record = entry(sub, digest, result)
    record["code_digest"] = _code_digest(sub)
    record["wrong_digest"] = f"{RUN}:{result.wrong_digest}" if result.wrong_digest else ""
    return record


def _code_digest(sub: Submission) -> str:
    try:
        return code_digest(read_source(sub.path)) if sub.path is not None else ""
    except SubmissionError:
        return ""


__all__ = ["BatchResult", "Submission", "find_submissions", "grade", "grade_iter",
           "write_grades"]
