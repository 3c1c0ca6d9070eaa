"""The layers assignment's judge, in process: the truth, the mistakes it can name, the
salt, and what it says about answers that are right, nearly right, or wrong in new ways."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad import check_layers
from handgrad.grade.layers import grader, mistakes
from handgrad.grade.layers.cases import CASES
from handgrad.grade.layers.contract import FUNCTIONS, LAYERS, POINTS, parse_functions
from handgrad.grade.layers.judge import PASS_TOL, SEPARATION, err, floor_of
from handgrad.grade.submission import load_module, read_source

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path) -> types.ModuleType:
    return load_module(read_source(path), None, f"layers_{path.stem}")


@pytest.fixture(scope="module")
def solution() -> types.ModuleType:
    return _module(ROOT / "examples" / "layers" / "solution.py")


def test_the_contract_covers_every_function_the_issue_names():
    assert sum(POINTS.values()) == 100
    assert {l.name for l in LAYERS} == {c.layer for c in CASES}
    for name in ("affine_backward", "relu_backward", "batchnorm_backward",
                 "layernorm_backward", "dropout_backward", "conv_backward",
                 "max_pool_backward", "softmax_loss"):
        assert name in FUNCTIONS
    assert parse_functions("layernorm_backward, batchnorm_backward") == (
        "batchnorm_backward", "layernorm_backward")
    with pytest.raises(ValueError, match="unknown function 'conv_backwards'"):
        parse_functions(["conv_backwards"])
    with pytest.raises(TypeError, match="a module or a dict of functions"):
        check_layers([print])


def test_the_example_solution_and_the_numpy_loops_pass_with_full_marks(solution):
    for module in (solution, _module(ROOT / "tests/submissions/layers/correct_numpy_loops.py")):
        result = check_layers(module)
        assert result.passed and result.diagnosis() is None, result
        assert result.score == result.max_score == 100
    assert "PASS" in str(result) and "<table>" in result._repr_html_()


def test_a_right_answer_computed_in_float32_still_passes(solution):
    def in_float32(fn):
        def call(*args):
            args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point()
                    else a for a in args]
            return fn(*args)
        return call
    namespace = {name: in_float32(getattr(solution, name)) for name in
                 ("affine_forward", "affine_backward", "conv_forward", "conv_backward",
                  "softmax_loss", "layernorm_forward", "layernorm_backward")}
    result = check_layers(namespace, functions=list(namespace))
    assert result.passed, result


def test_the_public_cases_and_a_salt_give_different_values():
    salt = grader.case_salt()
    for case in CASES:
        public, secret = case.inputs(0)["args"][0], case.inputs(salt)["args"][0]
        assert not torch.equal(public, secret), case.name


def test_every_mistake_shows_on_some_case_of_its_layer():
    """For the public seeds (the salt is redrawn until this holds for it too)."""
    assert grader._salt_fits(0)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(3, 7), st.integers(3, 7),
       st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2))
def test_the_loop_backward_the_mistakes_build_on_is_autograd(n, c, h, w, f, k, stride, pad):
    """conv_loops and pool_loops with nothing wrong switched on are autograd's gradients."""
    gen = torch.Generator().manual_seed(n * 1000 + h * 10 + w)
    x = torch.randn(n, c, h + k, w + k, generator=gen, dtype=torch.float64,
                    requires_grad=True)
    weight = torch.randn(f, c, k, k, generator=gen, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, weight, None, stride, pad)
    dout = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    dx, dw = torch.autograd.grad(out, (x, weight), dout)
    dxp, dw_loops = mistakes.conv_loops(x.detach(), weight.detach(), dout, stride, pad)
    used = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    assert err(used, dx, 1e-30) < 1e-12 and err(dw_loops, dw, 1e-30) < 1e-12
    xi = torch.randint(0, 3, (n, c, h, w), generator=gen).double().requires_grad_()
    param = {"pool_height": k, "pool_width": k, "stride": stride}
    pooled = F.max_pool2d(xi, k, stride)
    dpool = torch.randn(pooled.shape, generator=gen, dtype=torch.float64)
    (want,) = torch.autograd.grad(pooled, xi, dpool)
    assert torch.allclose(mistakes.pool_loops(xi.detach(), dpool, param, "first"), want)


def test_a_noisy_right_answer_is_wrong_values_never_a_named_mistake(solution):
    def noisy(scale):
        def backward(dout, cache):
            dx, dgamma, dbeta = solution.batchnorm_backward(dout, cache)
            gen = torch.Generator().manual_seed(0)
            return dx + scale * dx.abs().max() * torch.randn(dx.shape, generator=gen,
                                                             dtype=dx.dtype), dgamma, dbeta
        return {"batchnorm_forward": solution.batchnorm_forward,
                "batchnorm_backward": backward}
    assert check_layers(noisy(1e-9), functions=["batchnorm_backward"]).passed
    d = check_layers(noisy(3e-2), functions=["batchnorm_backward"]).diagnosis()
    assert d.kind == "values" and d.layer == "batchnorm_backward"
    assert "worst at dx[" in d.detail and "expected" in d.detail


def test_a_backward_without_its_forward_is_missing_and_the_others_are_graded(solution):
    namespace = {"relu_backward": solution.relu_backward,
                 "affine_forward": solution.affine_forward,
                 "affine_backward": solution.affine_backward}
    result = check_layers(namespace, functions="relu_backward,affine_backward")
    groups = {g["name"]: g for g in result.groups()}
    assert groups["affine_backward"]["score"] == POINTS["affine_backward"]
    assert groups["relu_backward"]["score"] == 0
    d = result.diagnosis()
    assert d.kind == "missing" and "relu_forward" in d.detail
    assert result.max_score == POINTS["relu_backward"] + POINTS["affine_backward"]


def softmax_loss_by_autograd(x, y):
    with torch.enable_grad():
        x = x.clone().requires_grad_()
        loss = F.cross_entropy(x, y)
        (dx,) = torch.autograd.grad(loss, x)
    return loss.detach(), dx


def test_autograd_in_a_backward_is_a_policy_failure_unless_allowed(solution):
    namespace = {"softmax_loss": softmax_loss_by_autograd}
    result = check_layers(namespace, functions=["softmax_loss"])
    assert result.diagnosis().kind == "autograd"
    assert check_layers(namespace, functions=["softmax_loss"], allow_autograd=True).passed


def test_wrong_return_values_and_exceptions_are_named(solution):
    def forward_without_cache(x):
        return torch.relu(x)

    def raises(x):
        raise ZeroDivisionError("boom")
    for fn, kind in ((forward_without_cache, "returned"), (raises, "error")):
        result = check_layers({"relu_forward": fn, "relu_backward": solution.relu_backward},
                              functions=["relu_forward"])
        assert result.diagnosis().kind == kind
    assert "ZeroDivisionError: boom" in result.diagnosis().detail

    def leaves(x, y):
        raise SystemExit(3)
    result = check_layers({"softmax_loss": leaves}, functions=["softmax_loss"])
    assert result.diagnosis().kind == "exited" and result.score == 0


@pytest.mark.parametrize("salt", [0, 12345, 987654321])
def test_each_mistake_either_passes_a_case_or_is_far_enough_to_be_named_there(salt):
    """On a case a mistake is within PASS_TOL of the truth (the case passes) or at least
    SEPARATION away (the case names it). Two exceptions fall between: a forgotten eps where
    the variance is not tiny (it is named where it is), and, where the variance is tiny
    and eps dominates it, the mistakes of the variance (named on the other cases)."""
    for case in CASES:
        for kind, candidate, right in grader.truth(case, salt).mistakes():
            floor = floor_of(right)
            e = max(err(c, w, floor) for c, w in zip(candidate, right, strict=True))
            between = kind == "eps_forgotten" or "variance ~1e-6" in case.name
            assert e <= PASS_TOL or e >= SEPARATION or between, (case.name, kind, e)


def test_every_kind_the_judge_can_name_has_a_hint_and_is_documented():
    from handgrad.grade.layers.judge import DETAILS
    from handgrad.grade.layers.result import HINTS

    named = {k for case in CASES for k, _, _ in grader.truth(case, 0).mistakes()}
    shapes_and_dropout = {"transposed", "bias_not_summed", "dx_not_reshaped",
                          "padding_not_removed", "p_as_drop_probability", "not_scaled",
                          "scaled_twice", "scaled_by_p", "seed_ignored", "eval_not_identity",
                          "no_mask", "unstable", "missing", "returned", "error", "autograd"}
    docs = (ROOT / "docs" / "grading.md").read_text()
    for kind in named | shapes_and_dropout | set(DETAILS):
        assert kind in HINTS, kind
        assert f"`{kind}`" in docs, kind


def test_the_same_wrong_numbers_give_the_same_wrong_digest(solution):
    """Two students who made one mistake with the same numbers, written differently, share
    a digest (similar.csv pairs them); another mistake, or right work, does not."""
    def grade(backward):
        return check_layers({"relu_forward": solution.relu_forward, "relu_backward": backward},
                            functions="relu_forward,relu_backward")

    unmasked = grade(lambda dout, cache: dout.clone())
    also_unmasked = grade(lambda dout, cache: 1.0 * dout)
    at_zero = grade(lambda dout, cache: dout * (cache >= 0))
    assert unmasked.diagnosis().kind == also_unmasked.diagnosis().kind == "no_mask"
    assert unmasked.wrong_digest and unmasked.wrong_digest == also_unmasked.wrong_digest
    assert at_zero.wrong_digest not in ("", unmasked.wrong_digest)
    assert grade(solution.relu_backward).wrong_digest == ""
    assert unmasked.to_json()["wrong_digest"] == unmasked.wrong_digest


def test_missing_functions_and_autograd_give_no_wrong_digest(solution):
    """Nothing was computed by hand: there are no wrong numbers to compare."""
    missing = check_layers({}, functions="relu_forward,relu_backward")
    assert missing.diagnosis().kind == "missing" and missing.wrong_digest == ""
    used = check_layers({"softmax_loss": softmax_loss_by_autograd}, functions=["softmax_loss"])
    assert used.diagnosis().kind == "autograd" and used.wrong_digest == ""


@pytest.mark.parametrize("name, function", [("bug_conv_forward_kernel_flip", "conv_forward"),
                                            ("bug_max_pool_forward_average", "max_pool_forward")])
def test_a_mistake_named_in_a_forward_is_told_in_the_forward_words(name, function):
    """kernel_flip and average are named in a forward and in a backward: in the forward,
    neither the detail nor the hint speaks of dx or of a gradient."""
    module = _module(ROOT / "tests" / "submissions" / "layers" / f"{name}.py")
    d = check_layers(module, functions=[function]).diagnosis()
    assert d.layer == function and d.detail.startswith("out: "), d
    assert "dx" not in d.detail + d.hint and "gradient" not in d.detail + d.hint, d

