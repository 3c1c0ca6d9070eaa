"""The judge and the in-process check: tolerances, diagnoses, integrity, the cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from handgrad import ACTIVATIONS, LOSSES, check_backprop
from handgrad.engine.backprop import backpropagation
from handgrad.grade import judge, mistakes
from handgrad.grade.cases import CASES, POINTS
from handgrad.grade.grader import load_function
from handgrad.grade.submission import SubmissionError, read_source

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BUGS = {  # file: (kind, first wrong layer or None to accept any)
    "batch_sum.py": ("batch_sum", None),
    "transposed.py": ("transposed", 2),
    "missing_factor_two.py": ("scale", 2),
    "wrong_sign.py": ("wrong_sign", 2),
    "derivative_at_activation.py": ("activation", 1),
    "missing_bias.py": ("missing", 2),
    "missing_activation_derivative.py": ("activation", 1),
    "raises.py": ("error", None),
}


def test_the_cases_cover_what_the_issue_asks():
    assert {len(c.sizes) - 1 for c in CASES} == set(range(1, 7))
    assert {c.activation for c in CASES} == set(ACTIVATIONS)
    assert any(c.out_activation != "identity" for c in CASES)
    assert any(c.batch == 0 for c in CASES) and any(c.batch == 1 for c in CASES)
    assert any(len(set(c.sizes)) == 1 and len(c.sizes) > 2 for c in CASES)  # square layers
    assert {c.group for c in CASES} == set(POINTS)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_float32_rounding_of_a_right_answer_is_far_below_the_pass_line(loss):
    """handgrad's own backward in float32 on every case: error <= PASS_TOL / 10."""
    for i, case in enumerate(CASES):
        t, p = mistakes.truth(i, loss), case.problem(loss)
        with torch.no_grad():
            backpropagation(p.model, p.y_true, p.model(p.x), loss)
        for l in range(1, p.model.L + 1):
            for got, want in zip((p.model.dL_dw[l], p.model.dL_db[l]), t.reference[l - 1],
                                 strict=True):
                assert judge.err(got.double(), want, t.floor) <= judge.PASS_TOL / 10


def test_every_named_mistake_is_either_exact_or_well_separated_from_the_truth():
    """No case leaves a mistake between 'the same numbers' and 'clearly different': either it
    is invisible there (and never named from that case) or at least SEPARATION away."""
    for i in range(len(CASES)):
        t = mistakes.truth(i, "sse")
        errors = judge.variant_errors(t)
        assert len(errors) >= 2 * len(t.reference) * (len(t.variants) - 1)
        assert all(e <= 1e-9 or e >= judge.SEPARATION for e in errors), i


def test_correct_example_passes_with_full_marks():
    result = check_backprop(load_function(str(EXAMPLES / "backprop_correct.py")))
    assert result.passed and result.diagnosis() is None
    assert result.score == result.max_score == 100
    assert "PASS" in str(result) and "<table>" in result._repr_html_()
    assert len(repr(result)) < 2500


@pytest.mark.parametrize("name", sorted(BUGS))
def test_every_shipped_bug_is_caught_with_the_right_diagnosis(name):
    result = check_backprop(load_function(str(EXAMPLES / "backprop_bugs" / name)))
    d = result.diagnosis()
    kind, layer = BUGS[name]
    assert not result.passed and d.kind == kind, (name, d)
    if layer is not None:
        assert d.layer == layer
    assert d.hint and "docs/" not in d.hint and ".py" not in d.hint


def test_the_batch_bug_passes_every_single_sample_case():
    result = check_backprop(load_function(
        str(EXAMPLES / "backprop_bugs" / "batch_sum.py")))
    assert all(c.passed for c in result.cases if c.case.batch == 1)
    assert not any(c.passed for c in result.cases if c.case.batch > 1 and len(c.case.sizes) > 2)
    assert 0 < result.score < 100


def _check(fn):
    """check_backprop for functions built on handgrad's own backward (allowed here)."""
    return check_backprop(fn, allow_autograd=True)


def _right(model, y_true, y_pred):
    with torch.no_grad():
        backpropagation(model, y_true, y_pred, "sse")


def _perturbed(scale):
    def fn(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        gen = torch.Generator().manual_seed(0)
        for l in model.dL_dw:
            for grads in (model.dL_dw, model.dL_db):
                g = grads[l]
                grads[l] = g + scale * g.abs().max() * torch.randn(g.shape, generator=gen)
    return fn


def test_rounding_noise_passes_and_a_real_error_is_not_called_batch_sum():
    assert _check(_perturbed(1e-6)).passed
    result = _check(_perturbed(3e-2))
    assert not result.passed and result.diagnosis().kind == "values"


def test_zero_gradients_are_zero_not_scale():
    def zeros(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        for l in model.dL_dw:
            model.dL_dw[l] = torch.zeros_like(model.dL_dw[l])
            model.dL_db[l] = torch.zeros_like(model.dL_db[l])
    assert _check(zeros).diagnosis().kind == "zero"


def test_a_bias_averaged_on_a_one_layer_net_is_mean_instead_of_sum():
    def mean_bias(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        n = 1 if y_pred.dim() == 1 else y_pred.shape[0]
        for l in model.dL_db:
            model.dL_db[l] = model.dL_db[l] / n
    d = _check(mean_bias).diagnosis()
    assert d.kind == "mean" and "dL_db" in d.detail and "dL_dw" not in d.detail


@pytest.mark.parametrize("shape", [(1, -1), (-1, 1)])
def test_a_bias_of_shape_1_h_or_h_1_fails(shape):
    def reshaped(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        for l in model.dL_db:
            model.dL_db[l] = model.dL_db[l].reshape(shape)
    d = _check(reshaped).diagnosis()
    assert d.kind == "shape" and "must be exactly" in d.detail


def test_system_exit_and_keyboard_interrupt_become_a_failed_result():
    def leaves(model, y_true, y_pred):
        raise SystemExit(0)

    def interrupted(model, y_true, y_pred):
        raise KeyboardInterrupt
    for fn in (leaves, interrupted):
        result = check_backprop(fn)
        assert not result.passed and result.score == 0 and result.diagnosis().kind == "exited"
    assert "exited with code 0" in check_backprop(leaves).error


def test_autograd_use_is_a_policy_failure_unless_allowed():
    def with_autograd(model, y_true, y_pred):
        params = [p for pair in model.params_by_layer() for p in pair]
        with torch.enable_grad():
            loss = LOSSES["sse"].torch_value(model(model.a[0]), y_true)
            grads = torch.autograd.grad(loss, params)
        for l in range(1, model.L + 1):
            model.dL_dw[l], model.dL_db[l] = grads[2 * l - 2], grads[2 * l - 1]
    assert check_backprop(with_autograd).diagnosis().kind == "autograd"
    assert check_backprop(with_autograd, allow_autograd=True).passed
    assert check_backprop(_right).diagnosis().kind == "autograd"  # handgrad's own backward


def test_cross_entropy_solution_graded_with_its_loss(tmp_path):
    (tmp_path / "ce.py").write_text(
        "import torch\n"
        "def backpropagation(model, y_true, y_pred):\n"
        "    y_pred, y_true = torch.atleast_2d(y_pred), torch.atleast_2d(y_true)\n"
        "    dL_da = (torch.softmax(y_pred, 1) - y_true) / y_pred.shape[0]\n"
        "    for l in range(model.L, 0, -1):\n"
        "        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))\n"
        "        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])\n"
        "        model.dL_db[l] = dL_dz.sum(0)\n"
        "        dL_da = dL_dz @ model.fc[str(l)].weight\n")
    fn = load_function(str(tmp_path / "ce.py"))
    assert check_backprop(fn, loss="cross_entropy").passed
    assert check_backprop(fn, loss="sse").diagnosis() is not None


def test_bad_targets(tmp_path):
    with pytest.raises(SubmissionError, match="no such file"):
        load_function(str(tmp_path / "none.py"))
    (tmp_path / "broken.py").write_text("def backpropagation(model, y_true, y_pred)\n    pass\n")
    with pytest.raises(SubmissionError, match=r"SyntaxError.*line 1"):
        load_function(str(tmp_path / "broken.py"))
    (tmp_path / "other.py").write_text("def backward(m, t, y):\n    pass\n")
    with pytest.raises(SubmissionError, match="no function 'backpropagation'.*backward"):
        load_function(str(tmp_path / "other.py"))


def test_a_notebook_is_its_code_cells_without_magics_and_shell_lines():
    chunks = read_source(ROOT / "tests" / "submissions" / "correct_notebook.ipynb")
    code = "\n".join(c for _, c in chunks)
    assert "def backpropagation" in code and "print('trained')" in code
    assert "%" not in code and "!" not in code and "echo" not in code
    assert [label.split(", ")[1] for label, _ in chunks] == ["cell 2", "cell 4", "cell 5",
                                                              "cell 6"]


def test_several_losses_each_get_their_share_of_the_points():
    def any_loss(model, y_true, y_pred, loss):
        y_pred, y_true = torch.atleast_2d(y_pred), torch.atleast_2d(y_true)
        dL_da = LOSSES[loss].grad(y_pred, y_true)
        for l in range(model.L, 0, -1):
            dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
            model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
            model.dL_db[l] = dL_dz.sum(0)
            dL_da = dL_dz @ model.fc[str(l)].weight

    def sse_only(model, y_true, y_pred, loss):
        any_loss(model, y_true, y_pred, "sse")
    result = check_backprop(any_loss, loss=["sse", "cross_entropy"])
    assert result.passed and result.score == 100 and len(result.cases) == 2 * len(CASES)
    half = check_backprop(sse_only, loss=["sse", "cross_entropy"])
    assert half.score == 50 and "cross_entropy" in half.diagnosis().case
    assert {g["name"] for g in half.points()} >= {"batch (sse)", "batch (cross_entropy)"}


def test_answers_computed_ahead_for_the_public_seeds_do_not_pass():
    """The weights come from a secret salt per process: a table of the truth for the
    public seeds (salt 0) matches no case."""
    table = [(mistakes.truth(i, "sse").weights[0][0], mistakes.truth(i, "sse").reference)
             for i in range(len(CASES))]

    def lookup(model, y_true, y_pred):
        for key, grads in table:
            if key.shape == model.weight(1).shape and torch.equal(key, model.weight(1)):
                for l, (w, b) in enumerate(grads, start=1):
                    model.dL_dw[l], model.dL_db[l] = w.float(), b.float()
    result = check_backprop(lookup)
    assert not result.passed and result.score == 0
    assert result.diagnosis().kind == "missing"


def test_forward_mode_autograd_is_autograd_use():
    from torch.func import functional_call, jacfwd

    def by_jacfwd(model, y_true, y_pred):
        params = {k: v.detach() for k, v in model.named_parameters()}
        g = jacfwd(lambda p: ((functional_call(model, p, (model.a[0],)) - y_true) ** 2).sum())(
            params)
        for l in range(1, model.L + 1):
            model.dL_dw[l], model.dL_db[l] = g[f"fc.{l}.weight"], g[f"fc.{l}.bias"]
    result = check_backprop(by_jacfwd)
    d = result.diagnosis()
    assert d.kind == "autograd" and "forward-mode" in d.detail
    assert check_backprop(by_jacfwd, allow_autograd=True).passed


def test_a_continuation_line_starting_with_percent_or_bang_is_python():
    from handgrad.grade.submission import _python_lines

    cell = "%matplotlib inline\nprint('%d'\n      % 3)\nx = (1 +\n     2)\n!ls\ny = 4 \\\n    % 3\n"
    assert _python_lines(cell).splitlines() == [
        "", "print('%d'", "      % 3)", "x = (1 +", "     2)", "", "y = 4 \\", "    % 3"]


def test_any_base_exception_from_the_function_is_its_error():
    class Mine(BaseException):
        pass

    for exc in (GeneratorExit, Mine):
        def fn(model, y_true, y_pred, exc=exc):
            raise exc("boom")
        d = check_backprop(fn).diagnosis()
        assert d.kind == "error" and "boom" in d.detail


def test_forward_ad_dual_numbers_are_autograd_use():
    import torch.autograd.forward_ad as fwAD

    def with_dual(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        with fwAD.dual_level():
            b = fwAD.make_dual(model.bias(1).detach(), torch.ones_like(model.bias(1)))
            model.dL_db[1] = model.dL_db[1] + 0 * fwAD.unpack_dual(b).tangent
    d = check_backprop(with_dual).diagnosis()
    assert d.kind == "autograd" and "forward-mode" in d.detail


SUBMISSIONS = ROOT / "tests" / "submissions"


def test_a_wrong_2d_gradient_heads_the_diagnosis_before_a_1d_exception():
    """W.T.reshape(W.shape): wrong values at layer 1 on the 2-D cases, and an exception on
    the 1-D case; the headline is the wrong gradient, the 1-D row keeps its exception."""
    result = check_backprop(load_function(str(SUBMISSIONS / "bug_scrambled_reshape.py")))
    d = result.diagnosis()
    one_d = next(c for c in result.cases if c.batch == 0)
    assert one_d.error_kind == "error" and not one_d.passed
    assert d.case != one_d.name and d.layer == 1 and d.kind == "values"
    assert any(row[0] == one_d.name and "error" in str(row[4]) for row in result.rows())


def test_a_factor_that_differs_across_entries_is_an_activation_not_a_scale():
    """The hidden layers' f' applied on the identity output layer: each output multiplied
    by its own factor (about 0.25 for sigmoid): `activation` on the last layer."""
    result = check_backprop(load_function(str(SUBMISSIONS / "bug_hidden_derivative_on_output.py")))
    kinds = {c.first_wrong().kind for c in result.cases if not c.passed and c.layers}
    assert kinds == {"activation"}
    d = result.diagnosis()
    assert d.kind == "activation" and d.layer == len(next(
        c for c in result.cases if c.name == d.case).case.sizes) - 1


@pytest.mark.parametrize("factor", [0.5, 2.0, -3.0])
def test_one_constant_factor_is_a_scale_and_a_varying_one_is_not(factor):
    def scaled(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        for l in range(1, model.L + 1):
            model.dL_dw[l] = model.dL_dw[l] * factor
            model.dL_db[l] = model.dL_db[l] * factor

    def varying(model, y_true, y_pred):
        _right(model, y_true, y_pred)
        for l in range(1, model.L + 1):
            ramp = torch.linspace(0.2496, 0.25, model.dL_db[l].numel())  # 0.16 % apart
            model.dL_dw[l] = model.dL_dw[l] * ramp[:, None] * factor
            model.dL_db[l] = model.dL_db[l] * ramp * factor
    assert _check(scaled).diagnosis().kind == "scale"
    assert _check(varying).diagnosis().kind == "values"


def test_a_scale_seen_on_one_case_only_is_not_the_headline():
    """A factor that varies across units looks constant on a case whose output layer has
    one unit; when another failing case shows wrong values, the headline is `values`."""
    from handgrad.grade.result import Diagnosis, _headline
    single = Diagnosis("5-3-1 relu", 2, "scale", "dL_dw[2] are the true gradient times 0.25", "")
    wide = Diagnosis("5-4-3 tanh", 2, "values", "dL_dw[2] are wrong (error 0.0008)", "")
    sign = Diagnosis("5-4-3 tanh", 1, "wrong_sign", "…", "")
    assert _headline([single, wide]).kind == "values"
    assert _headline([single, Diagnosis("4-2 relu", 1, "scale", "…", "")]).kind == "scale"
    assert _headline([wide, sign]).kind == "wrong_sign"
