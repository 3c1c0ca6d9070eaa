"""Grade a class: find the submissions, grade them in parallel (each in its own child),
keep going past any failure, and keep the grades in grades.csv and grades.json.

One submission is a .py or .ipynb file, or a student's folder (the file in it that defines
the function is graded; the folder's other modules are importable). A folder given on the
command line is a folder of submissions: each file and each sub-folder in it is one.

A rerun with the same --out reuses the grade of every submission whose files (and the
grader's settings) have not changed: their SHA-256 is kept in grades.json. Failures that may
be the machine's (a child killed by a signal, a grader error: "not_graded") are graded
again. `changes` lists the grades a rerun changed (changes.csv), `similar_pairs` the
submissions that look alike (similar.csv, `similar.py`).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from handgrad.grade import judge
from handgrad.grade.cases import CASES
from handgrad.grade.grader import GraderError, grade_file, loss_names
from handgrad.grade.result import CheckResult, most_common_kinds
from handgrad.grade.sandbox import server
from handgrad.grade.sandbox.isolate import Limits
from handgrad.grade.similar import SIMILAR_FIELDS, code_digest, similar_pairs
from handgrad.grade.submission import SUFFIXES, SubmissionError, read_source

CSV_FIELDS = ("id", "score", "max_score", "passed", "first_wrong_layer", "kind", "seconds",
              "error")
CHANGE_FIELDS = ("id", "old_score", "new_score", "old_kind", "new_kind")
RUN = os.urandom(4).hex()  # this process's run: wrong gradients compare only within one
SKIP = ("__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path | None  # the file graded; None when a folder has no file defining the function
    files: tuple[Path, ...]  # what the content hash covers
    folder: bool = False  # a student's folder: its other modules are importable


@dataclass
class BatchResult:
    entries: list[dict[str, Any]]  # one a submission, in the order found
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last run's

    @property
    def passed(self) -> int:
        return sum(e["passed"] for e in self.entries)

    @property
    def not_graded(self) -> list[str]:
        """The ids the grader failed on (graded again on the next run)."""
        return [e["id"] for e in self.entries if e["kind"] == "not_graded"]

    @property
    def changes(self) -> list[dict[str, Any]]:
        """Each submission whose score or kind differs from the last run's."""
        out = []
        for e in self.entries:
            old = self.previous.get(e["id"])
            if old is not None and (old.get("score"), old.get("kind")) != (e["score"], e["kind"]):
                out.append({"id": e["id"], "old_score": old.get("score"),
                            "new_score": e["score"], "old_kind": old.get("kind"),
                            "new_kind": e["kind"]})
        return out

    @property
    def similar(self) -> list[dict[str, str]]:
        return similar_pairs(self.entries)

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for e in self.entries:
            if not e["passed"] and e["kind"]:
                kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        common = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        scores = [e["score"] for e in self.entries]
        return {"submissions": len(self.entries), "passed": self.passed,
                "failed": len(self.entries) - self.passed,
                "mean_score": round(sum(scores) / len(scores), 2) if scores else 0.0,
                "not_graded": len(self.not_graded), "similar_pairs": len(self.similar),
                "most_common_mistakes": common}


def find_submissions(paths: Sequence[str | Path], function: str) -> list[Submission]:
    """The submissions in `paths` (files, folders of submissions); SubmissionError for a
    path that does not exist or holds none."""
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            if path.suffix not in SUFFIXES:
                raise SubmissionError(f"{path}: a submission is a .py file or a .ipynb notebook")
            found.append(Submission(path.stem, path, (path,)))
        elif path.is_dir():
            inside = [student_folder(p, function) if p.is_dir() else Submission(p.stem, p, (p,))
                      for p in sorted(path.iterdir()) if _counts(p)]
            if not inside:
                raise SubmissionError(f"{path}: no .py or .ipynb submission in this folder")
            found += inside
        else:
            raise SubmissionError(f"{path}: no such file or folder")
    return _unique_ids(found)


def _counts(p: Path) -> bool:
    hidden = p.name.startswith(".") or p.name in SKIP
    return not hidden and (p.is_dir() or p.suffix in SUFFIXES)


CONVENTIONAL = ("solution", "submission", "main")


def student_folder(p: Path, function: str) -> Submission:
    """A student's folder: graded through its top-level .py or .ipynb that defines
    `function` (path None when none does); the hash covers every file in it. A file with a
    real `def function` comes first (a comment or an assignment does not count as much),
    then a conventional name (solution.py …), then the name's order."""
    files = tuple(sorted(f for f in p.rglob("*") if f.is_file()
                         and not any(part in SKIP for part in f.parts)))
    ranked = sorted((rank, f.stem not in (*CONVENTIONAL, function), f.name, f)
                    for f in files if f.suffix in SUFFIXES and f.parent == p
                    for rank in [_defines(f, function)] if rank < 2)
    return Submission(p.name, ranked[0][3] if ranked else None, files, folder=True)


def among_submissions(path: Path, function: str) -> bool:
    """Whether the file `path` sits in a folder of submissions: another top-level file
    there defines `function` too (it is then graded alone, its neighbours not visible)."""
    here = path.resolve()
    return any(p != here and p.suffix in SUFFIXES and _defines(p, function) == 0
               for p in here.parent.iterdir() if p.is_file())


def _defines(path: Path, function: str) -> int:
    """0: a top-level `def function`; 1: `function = …` at top level; 2: neither."""
    try:
        chunks = read_source(path)
    except SubmissionError:
        return 2
    best = 2
    for _, code in chunks:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
                return 0
            targets = getattr(node, "targets", [getattr(node, "target", None)])
            if any(isinstance(t, ast.Name) and t.id == function for t in targets):
                best = 1
    return best


def _unique_ids(subs: list[Submission]) -> list[Submission]:
    seen: dict[str, int] = {}
    out = []
    for s in subs:
        n = seen[s.id] = seen.get(s.id, 0) + 1
        out.append(s if n == 1 else Submission(f"{s.id}-{n}", s.path, s.files, s.folder))
    return out


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
          out: str | Path | None = None) -> BatchResult:
    """Grade every submission in `paths`; with `out`, reuse and write grades there."""
    subs = find_submissions(paths, function)
    previous = read_previous(Path(out)) if out is not None else {}
    entries = {e["id"]: e for e, _ in grade_iter(subs, function, loss, jobs, limits,
                                                 allow_autograd, out)}
    result = BatchResult([entries[s.id] for s in subs if s.id in entries], previous)
    if out is not None:
        write_grades(Path(out), result)
    return result


def grade_iter(subs: list[Submission], function: str, loss: str | Sequence[str], jobs: int,
               limits: Limits | None, allow_autograd: bool, out: str | Path | None,
               only: Sequence[str] = ()) -> Iterator[tuple[dict[str, Any], bool]]:
    """(entry, reused) for each submission as it finishes; reused when its grade from a
    previous run in `out` still holds. `only`: grade these ids again, whatever their
    hash, and keep every other previous grade as it is (one without is left out)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    unknown = sorted(set(only) - {s.id for s in subs})
    if unknown:
        raise SubmissionError(f"no submission with id {unknown[0]!r}; the ids: "
                              f"{', '.join(s.id for s in subs[:10])}"
                              f"{' …' if len(subs) > 10 else ''}")
    server.start()  # here, in the calling thread, before any submission is read
    loss = ",".join(loss_names(loss))
    limits = limits or Limits()
    settings = {"function": function, "loss": loss, "allow_autograd": allow_autograd,
                "timeout": limits.timeout, "memory_mb": limits.memory_mb, "cpu_s": limits.cpu}
    previous = read_previous(Path(out)) if out is not None else {}
    todo = []
    for sub in subs:
        digest = fingerprint(sub, settings)
        old = previous.get(sub.id)
        if only and sub.id not in only:
            if old is not None:
                yield old, True
        elif (old is not None and old.get("hash") == digest and not only
              and not _may_be_transient(old)):
            yield old, True
        else:
            todo.append((sub, digest))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_grade_one, sub, digest, function, loss, limits, allow_autograd)
                   for sub, digest in todo]
        for future in as_completed(futures):
            yield future.result(), False


def _may_be_transient(entry: dict[str, Any]) -> bool:
    """A failure that may be the machine's, not the code's: graded again on a rerun
    (a grader error, unreadable results, a child killed by a signal)."""
    code = (entry.get("result") or {}).get("isolation", {}).get("exit_code")
    return entry.get("kind") in ("not_graded", "internal", "unreadable") or (
        entry.get("kind") == "exited" and isinstance(code, int) and code < 0)


def _grade_one(sub: Submission, digest: str, function: str, loss: str, limits: Limits,
               allow_autograd: bool) -> dict[str, Any]:
    start = time.perf_counter()
    if sub.path is None:
        result = CheckResult(loss, [], f"no .py or .ipynb file in the folder defines "
                                       f"{function}()", "no_function")
    else:
        try:
            result = grade_file(sub.path, function, loss, limits, allow_autograd,
                                importable=sub.folder)
        except SubmissionError as e:
            result = CheckResult(loss, [], str(e), "load")
        except GraderError as e:
            result = CheckResult(loss, [], f"not graded: {e}", "not_graded")
        except Exception as e:  # keep grading the others; the row says what went wrong
            result = CheckResult(loss, [], f"not graded: grader error: {type(e).__name__}: "
                                           f"{e}", "not_graded")
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


def entry(sub: Submission, digest: str, result: CheckResult) -> dict[str, Any]:
    """The grades.json record of one submission (its CSV row is a subset)."""
    d = result.diagnosis()
    errors = ("error", "exited", "timeout", "cpu", "memory", "load", "no_function", "unreadable",
              "internal", "modified", "autograd", "forged", "not_graded")
    return {"id": sub.id, "path": None if sub.path is None else str(sub.path),
            "score": result.score, "max_score": result.max_score, "passed": result.passed,
            "first_wrong_layer": None if d is None else d.layer,
            "kind": "" if d is None else d.kind,
            "seconds": round(result.seconds, 3),
            "error": d.detail if d is not None and d.kind in errors else "",
            "hash": digest, "result": result.to_json()}


def read_previous(out: Path) -> dict[str, dict[str, Any]]:
    """The entries of a previous grades.json in `out`, by id (none when absent/unreadable)."""
    try:
        data = json.loads((out / "grades.json").read_text())
        return {e["id"]: e for e in data["submissions"] if isinstance(e, dict) and "id" in e}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_grades(out: Path, batch: BatchResult) -> None:
    """grades.csv, grades.json, similar.csv and (after a previous run) changes.csv in
    `out`, each written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [{**e, "first_wrong_layer": e["first_wrong_layer"] or ""} for e in batch.entries]
    _atomic_write(out / "grades.csv", _csv(CSV_FIELDS, rows))
    _atomic_write(out / "similar.csv", _csv(SIMILAR_FIELDS, batch.similar))
    if batch.previous:
        _atomic_write(out / "changes.csv", _csv(CHANGE_FIELDS, batch.changes))
    doc = {"summary": batch.summary(), "submissions": batch.entries}
    _atomic_write(out / "grades.json", json.dumps(doc, indent=1))


def _csv(fields: Sequence[str], rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["BatchResult", "Submission", "among_submissions", "find_submissions", "grade",
           "grade_iter", "most_common_kinds", "write_grades"]
