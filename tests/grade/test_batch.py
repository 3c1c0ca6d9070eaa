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
    mlp = tmp_path_factory.mktemp("mlp")  # the corpus less layers/ (test_layers_grading.py),
    for path in SUBMISSIONS.iterdir():  # copied: the grader does not follow links
        if path.is_dir() and path.name not in ("layers", "__pycache__"):
            shutil.copytree(path, mlp / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.is_file():
            shutil.copy2(path, mlp / path.name)
    code = main(["grade", str(mlp), "--jobs", "2", "--timeout", TIMEOUT,
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
    assert entries["bug_scrambled_reshape"]["result"]["diagnosis"]["case"] != "5-4-3 tanh x (D,)"
    one_d = next(c for c in entries["bug_scrambled_reshape"]["result"]["cases"]
                 if c["name"] == "5-4-3 tanh x (D,)")
    assert one_d["error_kind"] == "error"  # its row stays in the table
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
    right = (SUBMISSIONS / "correct_plain.py").read_text().split("# expect: pass", 1)[1]
    (tmp_path / "net.py").write_text(
        f"import socket\n{right}\n"
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


def test_the_child_holds_no_descriptor_of_the_grader_or_its_server(tmp_path):
    """Its descriptors are stdin (/dev/null), the output file (twice) and its one channel
    to the keeper: not the grading server's socket (which forks keepers), not the grader's."""
    (tmp_path / "fds.py").write_text(
        "import json, os\n"
        "names = os.listdir('/proc/self/fd')  # its own descriptor is closed after this\n"
        "fds = {f: os.readlink(f'/proc/self/fd/{f}') for f in names\n"
        "       if os.path.lexists(f'/proc/self/fd/{f}')}\n"
        "print('FDS', json.dumps(fds))\n"
        "def backpropagation(model, y_true, y_pred):\n    pass\n")
    result = grade_file(tmp_path / "fds.py", limits=Limits(timeout=10))
    fds = json.loads(next(x for x in result.output.splitlines() if x.startswith("FDS"))[4:])
    assert fds.pop("0") == "/dev/null" and fds.pop("1") == fds.pop("2")
    assert len(fds) == 1 and next(iter(fds.values())).startswith("socket:"), fds


def _class_of_look_alikes(folder: Path) -> None:
    """alice right; carol is alice with other names, comments and layout; dave and erin make
    the same mistake in two different ways (identical wrong gradients); frank is alone."""
    right = (SUBMISSIONS / "correct_plain.py").read_text()
    folder.mkdir()
    (folder / "alice.py").write_text(right)
    (folder / "carol.py").write_text(
        '"""My own work!"""\nimport torch as T\n\n\ndef backpropagation(net, target, out):\n'
        "    # the loss's derivative\n    g = 2 * (out - target)\n"
        "    for k in range(net.L, 0, -1):\n"
        "        gz = T.atleast_2d(g * net.df[k](net.z[k]))  # through f'\n"
        "        net.dL_dw[k] = gz.T @ T.atleast_2d(net.a[k - 1])\n"
        "        net.dL_db[k] = gz.sum(dim=0)\n"
        "        g = gz @ net.fc[str(k)].weight\n")
    (folder / "dave.py").write_text(right.replace("2 * (y_pred - y_true)", "2 * (y_true - y_pred)"))
    (folder / "erin.py").write_text(right.replace("dL_da = 2 * (y_pred - y_true)",
                                                  "dL_da = (y_true - y_pred) * 2"))
    shutil.copy(SUBMISSIONS / "bug_mean_bias.py", folder / "frank.py")


def test_similar_csv_pairs_the_same_code_and_the_same_wrong_gradients(tmp_path, capsys):
    folder = tmp_path / "class"
    _class_of_look_alikes(folder)
    out = tmp_path / "grades"
    assert main(["grade", str(folder), "--out", str(out), "--jobs", "2"]) == 1
    assert "pair(s) of submissions look alike" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "similar.csv").open()))
    pairs = {(r["a"], r["b"]): r["reason"] for r in rows}
    assert pairs[("alice", "carol")] == "the same code after normalisation"
    assert pairs[("dave", "erin")] == "the same wrong gradients on the salted cases"
    assert not any("frank" in pair for pair in pairs)
    summary = json.loads((out / "grades.json").read_text())["summary"]
    assert summary["similar_pairs"] == len(rows)
    scores = {e["id"]: e["score"] for e in json.loads((out / "grades.json").read_text())[
        "submissions"]}
    assert scores["alice"] == scores["carol"] == 100  # flagged, never a grade change


def test_a_regrade_writes_changes_csv_and_only_regrades_one(tmp_path, capsys):
    folder = tmp_path / "class"
    _class_of_look_alikes(folder)
    out = tmp_path / "grades"
    main(["grade", str(folder), "--out", str(out), "--jobs", "2"])
    capsys.readouterr()
    assert not (out / "changes.csv").exists()  # no previous run: nothing to compare
    (folder / "dave.py").write_text((SUBMISSIONS / "correct_plain.py").read_text())
    assert main(["grade", str(folder), "--out", str(out), "--only", "dave"]) == 1
    text = capsys.readouterr().out
    assert "dave: 100/100 pass (" in text and "alice: 100/100 pass (unchanged, kept)" in text
    assert "1 grade(s) changed since the last run" in text
    assert (out / "changes.csv").read_text().splitlines() == [
        "id,old_score,new_score,old_kind,new_kind", "dave,0.0,100.0,wrong_sign,"]
    assert main(["grade", str(folder), "--out", str(out), "--only", "nobody"]) == 2
    capsys.readouterr()
    assert main(["grade", str(folder), "--out", str(out), "--loss", "mse"]) == 1  # new settings
    changed = {r["id"]: r for r in csv.DictReader((out / "changes.csv").open())}
    assert f"{len(changed)} grade(s) changed since the last run" in capsys.readouterr().out
    assert changed["alice"]["old_score"] == "100.0" and changed["alice"]["new_kind"]


def test_gradescope_visibility_and_groups_passed(tmp_path):
    path = tmp_path / "results.json"
    assert main(["check-backprop", str(SUBMISSIONS / "bug_batch_sum.py"), "--gradescope",
                 str(path), "--visibility", "after_published"]) == 1
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, GRADESCOPE_SCHEMA)
    assert doc["visibility"] == "after_published"
    assert {t["visibility"] for t in doc["tests"]} == {"after_published"}
    passed = sum(t["status"] == "passed" for t in doc["tests"])
    assert doc["output"].splitlines()[0] == f"{passed} of {len(doc['tests'])} groups passed"
    assert main(["check-backprop", str(SUBMISSIONS / "bug_batch_sum.py"), "--visibility",
                 "students"]) == 2


def test_check_backprop_of_one_file_of_a_class_folder_sees_no_classmate(capsys):
    """A file whose neighbours define the function too (a folder of submissions) is graded
    alone; a student's folder keeps its helper modules importable."""
    assert main(["check-backprop", str(SUBMISSIONS / "bug_imports_neighbour.py")]) == 1
    assert "No module named 'correct_plain'" in capsys.readouterr().out
    assert main(["check-backprop", str(SUBMISSIONS / "correct_student_folder")]) == 0
    assert main(["check-backprop", str(SUBMISSIONS / "correct_student_folder" /
                                        "solution.py")]) == 0
