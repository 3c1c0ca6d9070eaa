"""The course grader end to end: each submission of tests/submissions in a child process,
through `handgrad grade --jobs 2`, with its expected verdict and diagnosis; the Gradescope
results.json against its schema; exit codes; the network and file system confinement."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

import handgrad
from handgrad.cli import main
from handgrad.grade.grader import grade_file
from handgrad.grade.sandbox.isolate import Limits

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"
TIMEOUT = "10"  # generous: a correct submission takes about 2 s on a loaded 2-core machine
GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["score", "execution_time", "output", "tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published",
                                       "visible"]},
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["name", "score", "max_score", "output", "visibility"],
            "properties": {
                "name": {"type": "string"}, "output": {"type": "string"},
                "score": {"type": "number", "minimum": 0},
                "max_score": {"type": "number", "exclusiveMinimum": 0},
                "status": {"enum": ["passed", "failed"]},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published",
                                        "visible"]}},
            "additionalProperties": False}},
    },
}


def expectations() -> dict[str, tuple[bool, str | None, int | None]]:
    """id -> (passes, kind, layer) from each submission's '# expect:' line."""
    out = {}
    for path in sorted(SUBMISSIONS.rglob("*")):
        if path.suffix not in (".py", ".ipynb"):
            continue
        m = re.search(r"# expect: (pass|fail)(?: (\w+))?(?: layer=(\d))?", path.read_text())
        if m:
            sub_id = path.parent.name if path.parent != SUBMISSIONS else path.stem
            out[sub_id] = (m[1] == "pass", m[2], int(m[3]) if m[3] else None)
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    code = main(["grade", str(SUBMISSIONS), "--jobs", "2", "--timeout", TIMEOUT,
                 "--out", str(out), "--quiet"])
    return code, out


def test_the_folder_holds_at_least_30_submissions_in_every_category():
    expected = expectations()
    assert len(expected) >= 30
    assert sum(p for p, _, _ in expected.values()) >= 6
    assert sum(k.startswith("hostile") for k in expected) >= 8


def test_every_submission_gets_its_expected_verdict_and_diagnosis(graded):
    code, out = graded
    assert code == 1  # some failed
    entries = {e["id"]: e for e in json.loads((out / "grades.json").read_text())["submissions"]}
    expected = expectations()
    assert set(entries) == set(expected)
    for sub_id, (passes, kind, layer) in expected.items():
        e = entries[sub_id]
        assert e["passed"] is passes, (sub_id, e["kind"], e["error"])
        assert (e["score"] == 100) is passes, sub_id
        if kind is not None:
            assert e["kind"] == kind, (sub_id, e["kind"], e["error"])
        if layer is not None:
            assert e["first_wrong_layer"] == layer, sub_id
        assert len(e["result"]["output"]) < 5000, sub_id
    assert "exited with code 0 before returning gradients" in entries["hostile_os_exit"]["error"]
    assert "MemoryError" in entries["hostile_huge_allocation"]["error"]


def test_grades_csv_has_one_row_per_submission(graded):
    _, out = graded
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert list(rows[0]) == ["id", "score", "max_score", "passed", "first_wrong_layer", "kind",
                             "seconds", "error"]
    assert len(rows) == len(expectations())
    summary = json.loads((out / "grades.json").read_text())["summary"]
    assert summary["passed"] == sum(p for p, _, _ in expectations().values())
    assert summary["most_common_mistakes"]


def test_a_rerun_grades_only_what_changed(tmp_path, capsys):
    for name in ("correct_plain.py", "bug_wrong_sign.py"):
        shutil.copy(SUBMISSIONS / name, tmp_path / name)
    out = tmp_path / "grades"
    assert main(["grade", str(tmp_path / "correct_plain.py"), str(tmp_path / "bug_wrong_sign.py"),
                 "--out", str(out), "--jobs", "2"]) == 1
    capsys.readouterr()
    fixed = (tmp_path / "bug_wrong_sign.py").read_text().replace("y_true - y_pred",
                                                                 "y_pred - y_true")
    (tmp_path / "bug_wrong_sign.py").write_text(fixed)
    assert main(["grade", str(tmp_path / "correct_plain.py"), str(tmp_path / "bug_wrong_sign.py"),
                 "--out", str(out), "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "correct_plain: 100/100 pass (unchanged, kept)" in text
    assert re.search(r"bug_wrong_sign: 100/100 pass \(\d", text)


def test_gradescope_results_follow_the_schema_with_partial_credit(tmp_path):
    path = tmp_path / "results" / "results.json"
    code = main(["check-backprop", str(SUBMISSIONS / "bug_batch_sum.py"), "--gradescope",
                 str(path), "--json"])
    assert code == 1
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, GRADESCOPE_SCHEMA)
    assert 0 < doc["score"] < 100
    assert doc["score"] == pytest.approx(sum(t["score"] for t in doc["tests"]))
    single = next(t for t in doc["tests"] if t["name"] == "single sample")
    assert single["score"] >= single["max_score"] * 2 / 3  # N = 1 as a batch passes


def test_json_output_is_one_document(capsys):
    assert main(["check-backprop", f"{SUBMISSIONS / 'bug_transposed.py'}:backpropagation",
                 "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fail" and doc["diagnosis"]["kind"] == "transposed"
    layer = doc["cases"][0]["layers"][0]
    assert {"layer", "dw_error", "db_error", "kind", "hint"} <= set(layer)


@pytest.mark.parametrize("argv", [
    ["check-backprop", "no/such/file.py"],
    ["check-backprop", f"{SUBMISSIONS / 'correct_plain.py'}:nope"],
    ["check-backprop", str(SUBMISSIONS / "correct_plain.py"), "--timeout", "-1"],
    ["check-backprop", str(SUBMISSIONS / "correct_plain.py"), "--loss", "hinge"],
    ["grade", "no/such/folder"],
    ["grade", str(SUBMISSIONS), "--jobs", "0"],
])
def test_misusing_the_grader_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


@pytest.mark.parametrize("name, code", [("correct_notebook.ipynb", 0),
                                        ("hostile_sys_exit_at_import.py", 1),
                                        ("hostile_os_exit.py", 1)])
def test_exit_codes_of_check_backprop(name, code, capsys):
    assert main(["check-backprop", str(SUBMISSIONS / name)]) == code


def test_no_network_in_the_child(tmp_path):
    server = socket.create_server(("127.0.0.1", 0), backlog=128)  # connects without accept
    port = server.getsockname()[1]
    right = str(SUBMISSIONS / "correct_plain.py")
    (tmp_path / "net.py").write_text(
        "import socket\nfrom pathlib import Path\n"
        f"exec(Path({right!r}).read_text().split('# expect: pass', 1)[1])\n"
        "def backpropagation(model, y_true, y_pred, _right=backpropagation):\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    _right(model, y_true, y_pred)\n")
    try:
        result = grade_file(tmp_path / "net.py", limits=Limits(timeout=10))
        if not result.isolation["no_network"]:
            pytest.skip("this system refuses network namespaces")
        detail = result.diagnosis().detail
        assert not result.passed and "OSError" in detail and "create_connection" in detail
        assert grade_file(tmp_path / "net.py", limits=Limits(timeout=10, network=True)).passed
    finally:
        server.close()


def test_python_api_grades_a_batch(tmp_path):
    paths = [SUBMISSIONS / "correct_einsum.py", SUBMISSIONS / "bug_mean_bias.py"]
    batch = handgrad.grade_submissions(paths, jobs=2, limits=Limits(timeout=10))
    assert [e["passed"] for e in batch.entries] == [True, False]
    assert batch.entries[1]["kind"] == "mean"


def test_the_gradescope_recipe_writes_results_json(tmp_path):
    name = "bug_mean_bias.py"
    root = tmp_path / "autograder"
    (root / "submission" / "hw").mkdir(parents=True)
    shutil.copy(SUBMISSIONS / name, root / "submission" / "hw" / name)
    script = Path(__file__).resolve().parents[2] / "examples" / "gradescope" / "run_autograder"
    env = {**os.environ, "AUTOGRADER_ROOT": str(root),
           "HANDGRAD": str(Path(sys.executable).parent / "handgrad")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(doc, GRADESCOPE_SCHEMA)
    assert 0 < doc["score"] < 100
    assert "mean instead of sum" in doc["output"]


def _sleepers() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"4242.4242" in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


def test_nothing_the_submission_starts_outlives_it():
    result = grade_file(SUBMISSIONS / "hostile_daemon.py", limits=Limits(timeout=20))
    if not result.isolation["own_processes"]:
        pytest.skip("this system refuses PID namespaces")
    assert result.passed
    time.sleep(0.2)
    assert _sleepers() == []


def test_the_child_cannot_reach_the_fork_server_that_forked_it(tmp_path):
    """Its socket, at a path the test passes in: a pickle sent there would run outside."""
    from multiprocessing import forkserver

    grade_file(SUBMISSIONS / "correct_plain.py", limits=Limits(timeout=10))  # server up
    address = forkserver._forkserver._forkserver_address
    marker = tmp_path / "escaped.txt"
    payload = f"open({str(marker)!r}, 'w').write('x')"
    right = str(SUBMISSIONS / "correct_plain.py")
    (tmp_path / "esc.py").write_text(
        "import os, pickle, socket\nfrom pathlib import Path\n"
        "from multiprocessing import reduction\n"
        "class P:\n    def __reduce__(self):\n"
        f"        return (exec, ({payload!r},))\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({address!r})\n"
        "r, w = os.pipe(); n = os.open('/dev/null', os.O_RDWR)\n"
        "reduction.sendfds(s, [r, n, n, n])\n"
        "with os.fdopen(w, 'wb') as f:\n    pickle.dump({}, f); pickle.dump(P(), f)\n"
        f"exec(Path({right!r}).read_text().split('# expect: pass', 1)[1])\n")
    result = grade_file(tmp_path / "esc.py", limits=Limits(timeout=10))
    if not result.isolation["read_only_files"]:
        pytest.skip("this system refuses mount namespaces")
    time.sleep(0.3)
    assert not marker.exists()
    detail = result.diagnosis().detail
    assert not result.passed and ("ConnectionRefusedError" in detail
                                  or "FileNotFoundError" in detail), detail
