"""The grades of a class on disk: the record of each submission (`entry`), the class's
summary, and the files a run writes into --out, each written whole or not at all:
grades.csv (one row a submission, a cell a spreadsheet shows as text), grades.json (every
record in full, read back by a rerun), similar.csv and, after a previous run, changes.csv.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handgrad.grade.collect import Submission
from handgrad.grade.result import Grade
from handgrad.grade.similar import SIMILAR_FIELDS, similar_pairs

CSV_FIELDS = ("id", "score", "max_score", "passed", "first_wrong_layer", "kind", "seconds",
              "error")
CHANGE_FIELDS = ("id", "old_score", "new_score", "old_kind", "new_kind")


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


def entry(sub: Submission, digest: str, result: Grade) -> dict[str, Any]:
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
    writer.writerows({k: spreadsheet_text(v) for k, v in row.items()} for row in rows)
    return text.getvalue()


def spreadsheet_text(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a student id (a file name) that starts like a
    formula (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`, so opening grades.csv never
    runs a formula a student named a file after (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
