"""The grades of a class on disk (`grade/gradebook.py`): grades.csv and grades.json, read
back by a rerun; changes.csv after one; cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from handgrad.cli import main
from handgrad.grade.collect import Submission
from handgrad.grade.gradebook import BatchResult, entry, read_previous, write_grades
from handgrad.grade.result import CheckResult

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"


def _failed(sid: str, kind: str) -> dict:
    result = CheckResult("sse", [], error=f"{sid} failed", error_kind=kind, seconds=1.5)
    return entry(Submission(sid, Path(f"/class/{sid}.py"), ()), "ab" * 32, result)


def test_the_files_are_written_whole_and_read_back_by_a_rerun(tmp_path):
    first = BatchResult([_failed("ana", "load"), _failed("ben", "timeout")])
    write_grades(tmp_path, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "grades.csv", "grades.json", "similar.csv"]  # no changes.csv without a previous run
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [(r["id"], r["kind"], r["error"], r["first_wrong_layer"]) for r in rows] == [
        ("ana", "load", "ana failed", ""), ("ben", "timeout", "ben failed", "")]
    previous = read_previous(tmp_path)
    assert previous["ben"]["result"]["error_kind"] == "timeout"
    second = BatchResult([_failed("ana", "load"), _failed("ben", "memory")], previous)
    assert second.changes == [{"id": "ben", "old_score": 0.0, "new_score": 0.0,
                               "old_kind": "timeout", "new_kind": "memory"}]
    write_grades(tmp_path, second)
    assert list(csv.DictReader((tmp_path / "changes.csv").open()))[0]["new_kind"] == "memory"
    summary = json.loads((tmp_path / "grades.json").read_text())["summary"]
    assert summary["failed"] == 2 and summary["most_common_mistakes"] == [
        ["load", 1], ["memory", 1]]
    (tmp_path / "grades.json").write_text("{not json")
    assert read_previous(tmp_path) == {} and read_previous(tmp_path / "nowhere") == {}


def test_a_file_named_like_a_formula_is_text_in_the_csv_files(tmp_path):
    """A student id that a spreadsheet would run as a formula is written as text."""
    (tmp_path / "class").mkdir()
    shutil.copy(SUBMISSIONS / "correct_plain.py", tmp_path / "class" / "=HYPERLINK(1).py")
    shutil.copy(SUBMISSIONS / "bug_wrong_sign.py", tmp_path / "class" / "@sum.py")
    assert main(["grade", str(tmp_path / "class"), "--out", str(tmp_path / "out"),
                 "--quiet", "--timeout", "30"]) == 1
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert sorted(r["id"] for r in rows) == ["'=HYPERLINK(1)", "'@sum"]
    ids = [e["id"] for e in json.loads((tmp_path / "out" / "grades.json").read_text())
           ["submissions"]]
    assert sorted(ids) == ["=HYPERLINK(1)", "@sum"]  # the JSON keeps the real name
