"""The layers assignment end to end: every submission of tests/submissions/layers graded in
the sandbox by `handgrad grade --assignment layers --jobs 2`, with the verdict and the
diagnosis its '# expect-layers:' line gives; check-backprop, --functions, Gradescope."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import handgrad
from handgrad.cli import main
from handgrad.grade.layers import dropout_judge, grader
from handgrad.grade.layers.cases import CASES
from handgrad.grade.layers.contract import BY_NAME, LAYERS, POINTS
from handgrad.grade.layers.runner import describe

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions" / "layers"
SOLUTION = Path(__file__).resolve().parents[2] / "examples" / "layers" / "solution.py"


def expectations() -> dict[str, tuple[bool, str | None, str | None]]:
    """id -> (passes, kind, function) from each file's '# expect-layers:' line."""
    out = {}
    for path in sorted(SUBMISSIONS.glob("*.py")):
        m = re.match(r"# expect-layers: (pass|fail)(?: (\w+) (\w+))?", path.read_text())
        assert m, path
        out[path.stem] = (m[1] == "pass", m[2], m[3])
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    code = main(["grade", str(SUBMISSIONS), "--assignment", "layers", "--jobs", "2",
                 "--timeout", "30", "--out", str(out), "--quiet"])
    entries = json.loads((out / "grades.json").read_text())["submissions"]
    return code, {e["id"]: e for e in entries}, out


def test_the_corpus_has_three_mistakes_per_layer_and_two_correct_solutions():
    expected = expectations()
    assert sum(passes for passes, _, _ in expected.values()) >= 2
    for layer in LAYERS:
        functions = {layer.forward, layer.backward}
        kinds = {k for p, k, f in expected.values() if not p and f in functions}
        assert len(kinds) >= 3, layer.name


def test_every_mistake_the_judge_computes_has_a_submission_that_makes_it():
    """Each (function, kind) of `mistakes.py` is made by one file of the corpus, which the
    grader must then name (the next test): a diagnosis no submission shows is untested."""
    made = {(function, kind) for passes, kind, function in expectations().values()
            if not passes}
    for case in CASES:
        t, layer = grader.truth(case, 0), BY_NAME[case.layer]
        backward = t.backward_mistakes
        if case.layer == "dropout" and case.train:  # judged on the student's own mask
            x = t.inputs["args"][0]
            backward = dropout_judge.backward_truth(case, t.inputs["args"], t.inputs["dout"],
                                              {"out": describe(x)})[1]
        computed = [(layer.forward, k) for k, _ in t.forward_mistakes] + [
            (layer.backward, k) for k, _ in backward]
        assert set(computed) <= made, (case.name, set(computed) - made)


def test_every_submission_gets_its_expected_verdict_and_diagnosis(graded):
    code, entries, _ = graded
    assert code == 1
    expected = expectations()
    assert set(entries) == set(expected)
    for sub_id, (passes, kind, function) in expected.items():
        e = entries[sub_id]
        assert e["passed"] is passes, (sub_id, e["kind"], e["result"]["diagnosis"])
        if passes:
            assert e["score"] == e["max_score"] == 100
            continue
        assert (e["kind"], e["first_wrong_layer"]) == (kind, function), (
            sub_id, e["result"]["diagnosis"])
        assert e["result"]["isolation"]["process"] is True


def test_a_missing_function_scores_zero_for_its_own_points_only(graded):
    _, entries, _ = graded
    result = entries["bug_batchnorm_momentum_reversed"]["result"]
    groups = {g["name"]: g for g in result["groups"]}
    assert groups["batchnorm_backward"]["score"] == POINTS["batchnorm_backward"]
    assert groups["affine_forward"]["score"] == 0  # not defined in that file
    missing = [c for c in result["cases"] if c["function"] == "affine_forward"]
    assert missing and all(c["kind"] == "missing" for c in missing)


def test_check_backprop_grades_only_the_functions_asked_for(tmp_path, capsys):
    bug = SUBMISSIONS / "bug_batchnorm_no_mean_path.py"
    gradescope = tmp_path / "results.json"
    assert main(["check-backprop", str(bug), "--assignment", "layers", "--functions",
                 "batchnorm_forward,batchnorm_backward", "--gradescope", str(gradescope)]) == 1
    printed = capsys.readouterr().out
    assert "no_mean_path" in printed and "batchnorm_backward" in printed
    doc = json.loads(gradescope.read_text())
    assert [t["name"] for t in doc["tests"]] == ["batchnorm_forward", "batchnorm_backward"]
    assert doc["score"] == POINTS["batchnorm_forward"]
    assert "no_mean_path" in doc["tests"][1]["output"]
    assert main(["check-backprop", str(bug), "--assignment", "layers",
                 "--functions", "batchnorm_forward", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == POINTS["batchnorm_forward"]


@pytest.mark.parametrize("argv, message", [
    (["--functions", "batchnorm_backwrd"], "unknown function 'batchnorm_backwrd'"),
    (["--loss", "mse"], "--function and --loss apply to --assignment mlp"),
    (["--assignment", "mlp", "--functions", "relu_backward"], "--functions applies to"),
])
def test_misusing_the_layers_grader_exits_2_with_one_line(argv, message, capsys):
    argv = ["check-backprop", str(SOLUTION), *(["--assignment", "layers"]
                                               if "--assignment" not in argv else []), *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_example_notebook_handed_in_with_its_check_cells_is_graded_on_its_functions(
        capsys):
    """Its check_layers cells compute their truth with autograd: in the grader they are
    skipped, not counted as the submission's autograd; the last definition is graded."""
    notebook = SOLUTION.parent / "batchnorm.ipynb"
    assert main(["check-backprop", str(notebook), "--assignment", "layers", "--functions",
                 "batchnorm_forward,batchnorm_backward"]) == 0
    out = capsys.readouterr().out
    assert "PASS: all 2 functions" in out and "SKIPPED: handgrad.check_layers" in out


def test_python_api_grades_a_class_on_the_layers_asked_for():
    batch = handgrad.grade_submissions(
        [SUBMISSIONS / "correct_numpy_loops.py", SUBMISSIONS / "bug_relu_mask_at_zero.py"],
        jobs=2, assignment="layers", functions=["relu_forward", "relu_backward"])
    assert [e["passed"] for e in batch.entries] == [True, False]
    assert batch.entries[1]["kind"] == "mask_at_zero"
    assert batch.entries[1]["max_score"] == POINTS["relu_forward"] + POINTS["relu_backward"]


def test_the_gradescope_recipe_grades_the_layers_asked_for(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "hw.py").write_text(
        (SUBMISSIONS / "bug_layernorm_wrong_axis.py").read_text())
    script = SOLUTION.parents[1] / "gradescope" / "run_autograder"
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "HANDGRAD_ASSIGNMENT": "layers",
           "HANDGRAD_FUNCTIONS": "layernorm_forward,layernorm_backward",
           "HANDGRAD": str(Path(sys.executable).parent / "handgrad")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "results" / "results.json").read_text())
    assert [t["name"] for t in doc["tests"]] == ["layernorm_forward", "layernorm_backward"]
    assert doc["score"] == POINTS["layernorm_forward"]
    assert "wrong_axis" in doc["output"] and "axis" in doc["tests"][1]["output"]


def test_the_class_dashboard_shows_the_layers_mistakes(graded):
    _, _, out = graded
    page = (out / "report.html").read_text()
    assert "no_mean_path" in page and "batchnorm_backward" in page


def test_similar_csv_pairs_layers_submissions_with_the_same_wrong_numbers(tmp_path):
    """Two students who left ReLU's mask out, each in their own words, are paired on their
    numbers (their code differs); the mistake made otherwise is not."""
    folder, out = tmp_path / "class", tmp_path / "grades"
    folder.mkdir()
    bug = (SUBMISSIONS / "bug_relu_no_mask.py").read_text()
    (folder / "ana.py").write_text(bug)
    (folder / "ben.py").write_text(bug.replace("    dx = dout.clone()\n    return dx\n",
                                               "    return dout * 1.0\n"))
    shutil.copy(SUBMISSIONS / "bug_relu_mask_at_zero.py", folder / "cleo.py")
    assert main(["grade", str(folder), "--assignment", "layers", "--functions",
                 "relu_forward,relu_backward", "--out", str(out), "--quiet"]) == 1
    rows = list(csv.DictReader((out / "similar.csv").open()))
    assert [(r["a"], r["b"], r["reason"]) for r in rows] == [
        ("ana", "ben", "the same wrong gradients on the salted cases")]
    entries = {e["id"]: e for e in json.loads((out / "grades.json").read_text())["submissions"]}
    assert entries["ana"]["code_digest"] != entries["ben"]["code_digest"]
    assert entries["ana"]["kind"] == entries["ben"]["kind"] == "no_mask"


@pytest.mark.parametrize("stop, kind", [("while True:\n        pass", "timeout"),
                                        ("import os\n    os._exit(3)", "exited")])
def test_a_function_that_hangs_or_exits_costs_only_its_own_points(tmp_path, capsys, stop,
                                                                  kind):
    """The whole run ends without results; each layer, then its forward, run again on
    their own: the others keep their points (batchnorm_forward included)."""
    student = tmp_path / "student.py"
    student.write_text(SOLUTION.read_text() + "\n\ndef batchnorm_backward(dout, cache):\n"
                       f"    {stop}\n")
    asked = "affine_forward,affine_backward,batchnorm_forward,batchnorm_backward"
    assert main(["check-backprop", str(student), "--assignment", "layers", "--functions",
                 asked, "--timeout", "5", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] is None
    scores = {g["name"]: g["score"] for g in doc["groups"]}
    assert scores == {f: (0 if f == "batchnorm_backward" else POINTS[f])
                      for f in asked.split(",")}
    assert doc["diagnosis"]["kind"] == kind and doc["diagnosis"]["layer"] == "batchnorm_backward"
