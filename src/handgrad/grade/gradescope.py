"""Gradescope's results.json for one graded submission: one test per group of cases, so that
partial work earns partial credit (format: Gradescope's autograder specification)."""

from __future__ import annotations

from typing import Any

from handgrad.grade.result import CheckResult

VISIBILITY = ("visible", "hidden", "after_due_date", "after_published")


def gradescope_results(result: CheckResult, visibility: str = "visible") -> dict[str, Any]:
    """{"score", "execution_time", "output", "visibility", "stdout_visibility", "tests": [
    {"name", "score", "max_score", "status", "output", "visibility"}]}; the output starts
    with "N of M groups passed"."""
    if visibility not in VISIBILITY:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITY)}, got "
                         f"{visibility!r}")
    tests = []
    for g in result.points():
        failing = [c for c in result.cases if c.group == g["name"] and not c.passed]
        lines = [f"{g['passed']} of {g['cases']} cases match autograd"]
        if result.error is not None:
            lines = [result.error]
        for c in failing[:3]:
            wrong = c.first_wrong()
            what = f"{c.error_kind}: {c.error}" if c.error else (
                f"layer {wrong.layer}: {wrong.kind}: {wrong.detail}" if wrong else "failed")
            lines.append(f"{c.name}: {what}")
        tests.append({"name": g["name"], "score": g["score"], "max_score": g["max_score"],
                      "status": "passed" if g["score"] == g["max_score"] else "failed",
                      "output": "\n".join(lines), "visibility": visibility})
    passed = sum(t["status"] == "passed" for t in tests)
    output = f"{passed} of {len(tests)} groups passed\n{result.summary()}"
    if result.output:
        output += "\n\nYour code printed (cut to a few KB):\n" + result.output
    return {"score": result.score, "execution_time": round(result.seconds, 3),
            "output": output, "visibility": visibility, "stdout_visibility": "hidden",
            "tests": tests}
