"""The class dashboard (report/dashboard.py) on a synthetic class of 500 built from real
`CheckResult`s: real submissions checked in this process, their grades.json entries
repeated under 500 names, with submissions that could not be graded among them."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from handgrad.grade.collect import Submission
from handgrad.grade.gradebook import entry
from handgrad.grade.grader import check_backprop, load_function
from handgrad.grade.result import CheckResult
from handgrad.report.dashboard import dashboard_page, write_dashboard

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"
GRADED = ("correct_plain", "bug_transposed", "bug_wrong_sign", "bug_raises",
          "bug_no_activation_derivative", "bug_batch_sum")
pytestmark = pytest.mark.filterwarnings("ignore:The use of `x.T`:UserWarning")
HOSTILE_ID = "<img src=x onerror=alert(1)>"


def _entry(sid: str, result: CheckResult) -> dict:
    return entry(Submission(sid, Path(f"/home/course/{sid}/solution.py"), ()), "0" * 64, result)


@pytest.fixture(scope="module")
def results() -> list[CheckResult]:
    out = [check_backprop(load_function(str(SUBMISSIONS / f"{name}.py"))) for name in GRADED]
    out.append(CheckResult("sse", [], error="grader error: OSError: disk full",
                           error_kind="internal"))
    out.append(CheckResult("sse", [], error="no .py or .ipynb file in the folder defines "
                           "backpropagation()", error_kind="no_function"))
    return out


@pytest.fixture(scope="module")
def klass(results) -> list[dict]:
    entries = [_entry(f"student-{i:03d}", results[i % len(results)]) for i in range(499)]
    return [*entries, _entry(HOSTILE_ID, results[1])]


class Tables(HTMLParser):
    """Rows of every table (cells' text), anchors' targets and element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.ids, self.hrefs, self._table, self._cell = set(), [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.hrefs.append(a["href"][1:])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or str(len(self.tables)), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = None


def test_a_class_of_500_on_one_readable_page(klass, tmp_path):
    page = write_dashboard(tmp_path, klass).read_text()
    assert len(page) < 8_000_000
    parsed = Tables()
    parsed.feed(page)
    students = parsed.tables["students-table"]
    assert len(students) == 1 + 500
    assert {row[0] for row in students[1:]} == {e["id"] for e in klass}
    # every link to a student leads to their (folded) details
    assert len([h for h in parsed.hrefs if h.startswith("s-")]) == 500
    assert all(h in parsed.ids for h in parsed.hrefs)
    assert page.count('<details class="student"') == 500


def test_counts_match_the_grades(klass):
    page = dashboard_page(klass)
    graded = [e for e in klass if e["kind"] not in ("internal", "no_function")]
    histogram = [int(n) for n in re.findall(r'<span class="count">(\d+)</span>', page)]
    assert len(histogram) == 10 and sum(histogram) == len(graded)
    assert histogram[-1] == sum(e["score"] >= 90 for e in graded)
    parsed = Tables()
    parsed.feed(page)
    by_kind = {row[0]: int(row[1]) for row in _table_after(parsed, "mistake")}
    assert by_kind == Counter(e["kind"] for e in graded if not e["passed"])
    not_graded = [row for rows in parsed.tables.values() for row in rows
                  if row and row[0].startswith("student-") and len(row) == 2]
    assert len(not_graded) == len(klass) - len(graded)
    assert any("disk full" in row[1] for row in not_graded)
    groups = _table_after(parsed, "group of cases")
    assert {int(row[2]) for row in groups} == {len(graded)}  # rates over the graded only


def test_examples_are_anonymised_and_everything_is_escaped(klass):
    page = dashboard_page(klass)
    assert HOSTILE_ID not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    parsed = Tables()
    parsed.feed(page)
    for rows in (_table_after(parsed, "mistake"), _table_after(parsed, "first wrong layer")):
        assert rows
        for row in rows:
            assert "student-" not in row[-1] and "/home/course" not in row[-1]


def _table_after(parsed: Tables, header: str) -> list[list[str]]:
    return next(rows[1:] for rows in parsed.tables.values() if rows and rows[0][0] == header)


def test_grade_out_writes_the_dashboard(tmp_path):
    from handgrad.cli.main import main

    files = [str(SUBMISSIONS / f"{name}.py") for name in ("correct_plain", "bug_wrong_sign")]
    assert main(["grade", *files, "--quiet", "--jobs", "2", "--out", str(tmp_path)]) == 1
    page = (tmp_path / "report.html").read_text()
    assert "correct_plain" in page and "bug_wrong_sign" in page and "wrong_sign" in page


def test_isolation_counts_what_each_submission_reports(klass):
    from handgrad.report.dashboard import isolation_rows

    reports = [{"process": True, "no_network": True, "own_processes": False, "seccomp": True},
               {"process": True, "no_network": False, "own_processes": True}, {}]
    entries = [dict(e, result=dict(e["result"], isolation=iso))
               for e, iso in zip(klass[:3], reports, strict=True)]
    assert isolation_rows(entries) == [["own child process", 2, 2], ["no network", 1, 2],
                                       ["own PID namespace", 1, 2], ["seccomp", 1, 1]]
