"""Judging what a layer function returned, against float64 autograd, in the grader's own
process; the data comes from the child (`runner.py`) and is not trusted.

Errors are relative to the truth's scale: err(g, r) = max|g - r| / max(max|r|, floor),
floor = 1e-6 × the largest true entry of the function's outputs on the case.

- PASS_TOL = 1e-4: every output of a function within it on a case passes the case (a float64
  answer is within 1e-12; one computed in float32 within about 1e-6, and 3e-5 for logits
  near 1000, which float32 itself rounds by 3e-5).
- A mistake is named when every wrong output matches that mistake's numbers within
  MATCH_TOL = 1e-3, on a case where the mistake is at least SEPARATION = 1e-2 from the truth
  in those outputs (a forgotten eps shows only where the variance is tiny: it is named there).
- Otherwise: zero, wrong_sign, scale (the truth times a constant), or values, with the
  worst element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from handgrad.grade.layers.cases import LayerCase

Tensor = torch.Tensor
PASS_TOL, MATCH_TOL, SEPARATION, FLOOR = 1e-4, 1e-3, 1e-2, 1e-6


@dataclass
class Verdict:
    """One function on one case: "ok" or the kind of mistake, and the error per output."""

    function: str
    case: LayerCase
    kind: str
    detail: str = ""
    errors: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.kind == "ok"


def err(got: Tensor, want: Tensor, floor: float) -> float:
    """max|got - want| / max(max|want|, floor)."""
    if want.numel() == 0:
        return 0.0
    scale = max(want.abs().max().item(), floor)
    return (got - want).abs().max().item() / scale


def floor_of(want: tuple[Tensor, ...]) -> float:
    top = max((t.abs().max().item() for t in want if t.numel()), default=0.0)
    return FLOOR * max(top, 1e-30)


def plain(t: object) -> bool:
    """A dense float64 CPU tensor: what the child sends (a forged result may hold others)."""
    return (type(t) is Tensor and t.layout == torch.strided and t.device.type == "cpu"
            and t.dtype == torch.float64 and not t.is_meta)


def value_of(desc: Any, name: str, want: Tensor, case: LayerCase) -> Tensor | tuple:
    """The returned output as a float64 tensor of the truth's shape, or (kind, detail) when
    it cannot be compared: missing, not numbers, a wrong shape, NaN or inf."""
    if not isinstance(desc, dict) or desc.get("type") == "missing":
        return "missing", f"{name} was not returned"
    t = desc.get("value")
    if not plain(t):
        what = str(desc.get("type", "?"))[:80]
        return "not_tensor", f"{name} is a {what}, not a torch tensor or numpy array of numbers"
    if want.dim() == 0 and t.numel() == 1:
        t = t.reshape(())
    if tuple(t.shape) != tuple(want.shape):
        return shape_kind(case, name, tuple(t.shape), tuple(want.shape))
    if not torch.isfinite(t).all():
        big = case.setting("offset", 0.0) >= 100
        return ("unstable" if big else "nan"), f"{name} contains NaN or inf"
    return t


def shape_kind(case: LayerCase, name: str, got: tuple, want: tuple) -> tuple[str, str]:
    """The mistake a wrong shape gives away, or "shape"."""
    detail = f"{name} has shape {got}; it must be exactly {want}"
    n_got = torch.Size(got).numel()
    if name == "dw" and case.layer == "affine" and got == want[::-1]:
        return "transposed", f"{detail}: dw = x.T @ dout, of w's shape (D, M)"
    if name in ("db", "dgamma", "dbeta") and n_got > torch.Size(want).numel() and (
            got[-1:] == want or (len(got) == 4 and got[1] == want[0]) or got[:1] == want):
        return "bias_not_summed", f"{detail}: sum over the batch (and every position)"
    if name == "dx" and case.layer == "affine" and len(got) == 2 and n_got == (
            torch.Size(want).numel()):
        return "dx_not_reshaped", f"{detail}: reshape dx to x's shape"
    if name == "dx" and case.layer == "conv" and len(got) == 4 and got[:2] == want[:2]:
        pad = case.setting("pad")
        if got[2:] == (want[2] + 2 * pad, want[3] + 2 * pad):
            return "padding_not_removed", f"{detail}: crop the padding from dx"
    if name in ("dgamma", "dbeta") and case.layer == "layernorm" and got == (
            case.setting("D"),) and got != want:
        return "wrong_axis", f"{detail}: sum over the batch axis 0"
    return "shape", detail


def judge_outputs(function: str, case: LayerCase, names: tuple[str, ...], got: list,
                  want: tuple[Tensor, ...], mistakes: list) -> Verdict:
    """The verdict on one function's outputs `got` (descriptions from the child) against
    the truth `want`, naming one of `mistakes` [(kind, outputs)] when it matches."""
    values = []
    for name, desc, w in zip(names, got, want, strict=True):
        v = value_of(desc, name, w, case)
        if isinstance(v, tuple):
            return Verdict(function, case, *v)
        values.append(v)
    floor = floor_of(want)
    errors = {n: err(g, w, floor) for n, g, w in zip(names, values, want, strict=True)}
    wrong = [i for i, n in enumerate(names) if errors[n] > PASS_TOL]
    if not wrong:
        return Verdict(function, case, "ok", errors=errors)
    kind, detail = name_mistake(function, names, values, want, wrong, mistakes, floor)
    return Verdict(function, case, kind, detail, errors)


def _matches(got: Tensor, candidate: Tensor, want: Tensor, floor: float) -> bool:
    """got is `candidate`, and `candidate` is far enough from the truth to tell apart."""
    return (candidate.shape == want.shape and err(candidate, want, floor) >= SEPARATION
            and err(got, candidate, floor) <= MATCH_TOL)


def name_mistake(function: str, names: tuple[str, ...], got: list, want: tuple,
                 wrong: list[int], mistakes: list, floor: float) -> tuple[str, str]:
    where = " and ".join(names[i] for i in wrong)
    generic = [("zero", tuple(torch.zeros_like(w) for w in want)),
               ("wrong_sign", tuple(-w for w in want))]
    for kind, candidate in [*mistakes, *generic]:
        if all(_matches(got[i], candidate[i], want[i], floor) for i in wrong):
            return kind, f"{where}: {detail_of(function, kind)}"
    g = torch.cat([got[i].reshape(-1) for i in wrong])
    w = torch.cat([want[i].reshape(-1) for i in wrong])
    if (w @ w).item() > 0:
        scale = (g @ w).item() / (w @ w).item()
        if all(_matches(got[i], scale * want[i], want[i], floor) for i in wrong):
            return "scale", f"{where}: the true values times {scale:.4g}"
    return "values", worst_element(names, got, want, wrong, floor)


def worst_element(names: tuple[str, ...], got: list, want: tuple, wrong: list[int],
                  floor: float) -> str:
    """'dx is wrong (error 0.31); worst at dx[1, 2]: 0.53, expected 1.27'."""
    i = max(wrong, key=lambda k: err(got[k], want[k], floor))
    diff = (got[i] - want[i]).abs()
    index = tuple(int(k) for k in torch.unravel_index(diff.argmax(), diff.shape))
    at = f"[{', '.join(map(str, index))}]" if index else ""
    return (f"{' and '.join(names[k] for k in wrong)} wrong (error "
            f"{err(got[i], want[i], floor):.2g}); worst at {names[i]}{at}: "
            f"{got[i][index].item():.6g}, expected {want[i][index].item():.6g}")


def detail_of(function: str, kind: str) -> str:
    """What the student did, for a mistake `kind` found in `function`'s outputs."""
    return FORWARD_DETAILS.get(kind, DETAILS.get(kind, kind)) if function.endswith(
        "_forward") else DETAILS.get(kind, kind)


FORWARD_DETAILS = {  # a kind named in a forward and in a backward, in the forward's words
    "kernel_flip": "computed with the kernel flipped (a convolution), not the correlation "
                   "a conv layer computes",
    "average": "each window averaged (average pooling), not its maximum taken",
}
DETAILS = {
    "zero": "all zeros",
    "wrong_sign": "the negative of the true values",
    "bias_mean": "the bias gradient averaged instead of summed",
    "mask_from_dout": "the mask taken from dout > 0, not from x > 0",
    "mask_at_zero": "the gradient let through where x == 0 (x >= 0): ReLU's derivative at "
                    "0 is 0",
    "no_mask": "dout passed through unmasked",
    "not_scaled": "the kept units' gradient not divided by p",
    "scaled_twice": "the kept units' gradient divided by p twice",
    "scaled_by_p": "the kept units' gradient multiplied by p, not divided",
    "mask_inverted": "the gradient let through where x < 0 instead of x > 0",
    "no_mean_path": "the gradient through the mean left out",
    "no_variance_path": "the gradient through the variance left out",
    "statistics_constant": "the mean and variance treated as constants (both paths left out)",
    "wrong_axis": "the mean or variance taken over the wrong axis",
    "unbiased_variance": "the variance divided by N - 1 (unbiased) instead of N",
    "eps_forgotten": "eps left out of √(σ² + eps)",
    "dgamma_from_x": "dgamma summed from dout · x instead of dout · x̂",
    "momentum_reversed": "the running statistics with momentum and 1 - momentum swapped",
    "running_var_unbiased": "the running variance updated with the unbiased (N - 1) variance",
    "running_stats_not_updated": "bn_param's running_mean / running_var not updated",
    "eval_batch_statistics": "mode 'test' normalised with the batch's statistics, not the "
                             "running ones",
    "kernel_flip": "the kernel not flipped (or flipped twice) in dx",
    "dw_flipped": "dw is the flipped kernel gradient",
    "padding_offset": "the padding cropped from the wrong side of dx",
    "stride_ignored": "the stride left out where the windows are placed",
    "every_element": "the gradient sent to every element of the window",
    "average": "the window's gradient shared equally (average pooling)",
    "all_tied_maxima": "the gradient sent to every tied maximum of a window",
    "other_tied_maximum": "the gradient sent to another tied maximum than the first",
    "overlap_overwritten": "overlapping windows' gradients assigned (=), not added (+=)",
    "no_mean": "the 1/N of the mean over the batch left out",
    "shift_in_gradient": "the max-shift applied to the gradient (dx - max)",
    "unnormalised": "exp(x - max) not divided by its sum",
    "no_onehot": "the one-hot of y not subtracted",
}
