from __future__ import annotations

from pathlib import Path

import pytest

from handgrad.check.grader import SubmissionError, check_backprop, load_function

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BUGS = {  # file: (kind, first wrong layer or None to accept any)
    "batch_sum.py": ("batch_sum", None),
    "transposed.py": ("transposed", 1),
    "missing_factor_two.py": ("scale", 1),
    "wrong_sign.py": ("wrong_sign", 1),
    "derivative_at_activation.py": ("activation", None),
    "missing_bias.py": ("missing", 1),
    "missing_activation_derivative.py": ("activation", None),
}


def test_correct_solution_passes():
    result = check_backprop(load_function(f"{EXAMPLES / 'backprop_correct.py'}:backpropagation"))
    assert result.passed and result.diagnosis() is None
    assert {c.batch for c in result.cases} == {1, 7}
    assert {len(c.sizes) - 1 for c in result.cases} == {1, 2, 3, 4}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_every_shipped_bug_is_caught_with_the_right_diagnosis(name):
    result = check_backprop(load_function(str(EXAMPLES / "backprop_bugs" / name)))
    assert not result.passed
    d = result.diagnosis()
    kind, layer = BUGS[name]
    assert d.kind == kind, (name, d)
    if layer is not None:
        assert d.layer == layer
    assert d.hint


def test_batch_bug_passes_every_single_sample_case():
    result = check_backprop(load_function(str(EXAMPLES / "backprop_bugs" / "batch_sum.py")))
    assert all(c.passed for c in result.cases if c.batch == 1)
    assert not any(c.passed for c in result.cases if c.batch > 1 and len(c.sizes) > 2)


def test_function_that_raises_shows_the_users_line():
    fn = load_function(str(EXAMPLES / "backprop_bugs" / "raises.py"))
    with pytest.raises(SubmissionError, match=r"RuntimeError: .*raises\.py, line 8"):
        check_backprop(fn)


def test_bad_targets(tmp_path):
    with pytest.raises(SubmissionError, match="no such file"):
        load_function(str(tmp_path / "none.py"))
    (tmp_path / "broken.py").write_text("def backpropagation(model, y_true, y_pred)\n    pass\n")
    with pytest.raises(SubmissionError, match=r"SyntaxError.*line 1"):
        load_function(str(tmp_path / "broken.py"))
    (tmp_path / "other.py").write_text("def backward(m, t, y):\n    pass\n")
    with pytest.raises(SubmissionError, match="no function 'backpropagation'.*backward"):
        load_function(str(tmp_path / "other.py"))


def test_cross_entropy_solution_graded_with_its_loss(tmp_path):
    (tmp_path / "ce.py").write_text(
        "import torch\n"
        "def backpropagation(model, y_true, y_pred):\n"
        "    dL_da = (torch.softmax(y_pred, 1) - y_true) / y_pred.shape[0]\n"
        "    for l in range(model.L, 0, -1):\n"
        "        dL_dz = dL_da * model.df[l](model.z[l])\n"
        "        model.dL_dw[l] = dL_dz.T @ model.a[l - 1]\n"
        "        model.dL_db[l] = dL_dz.sum(0)\n"
        "        dL_da = dL_dz @ model.fc[str(l)].weight\n")
    fn = load_function(str(tmp_path / "ce.py"))
    assert check_backprop(fn, loss="cross_entropy").passed
    assert check_backprop(fn, loss="sse").diagnosis() is not None
