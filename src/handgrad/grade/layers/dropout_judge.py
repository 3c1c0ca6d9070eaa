"""Judging dropout, whose truth depends on the student's own random mask.

Inverted dropout with CS231n's p, the probability of KEEPING a unit: in mode 'train',
out = x ⊙ mask / p with mask ~ Bernoulli(p); in mode 'test', out = x. The judge reads the
mask back from the student's output (x has no zeros): every out/x must be 0 or 1/p, the kept
fraction within 5 standard deviations of p, and the same seed must give the same mask. The
backward is then judged against dout ⊙ [out ≠ 0] / p, the gradient of that same mask.
"""

from __future__ import annotations

import math

import torch

from handgrad.grade.layers.cases import LayerCase
from handgrad.grade.layers.judge import PASS_TOL, Verdict, err, floor_of, value_of

Tensor = torch.Tensor


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(b), 1.0)


def forward_verdict(case: LayerCase, args: list, result: dict) -> Verdict:
    """The verdict on dropout_forward's out (and its repeat with the same seed)."""
    x, param = args
    out = value_of(result.get("out"), "out", x, case)
    if isinstance(out, tuple):
        return Verdict("dropout_forward", case, *out)
    if not case.train:
        if err(out, x, floor_of((x,))) <= PASS_TOL:
            return Verdict("dropout_forward", case, "ok")
        return Verdict("dropout_forward", case, "eval_not_identity",
                       "in mode 'test' out must be x itself (inverted dropout scales in "
                       "training only)")
    kind, detail = _train_kind(x, out, param["p"])
    if kind == "ok":
        again = value_of(result.get("again"), "out", x, case)
        if isinstance(again, tuple) or not torch.equal(again, out):
            kind, detail = "seed_ignored", ("two calls with the same dropout_param['seed'] "
                                            "gave different masks")
    return Verdict("dropout_forward", case, kind, detail)


def _train_kind(x: Tensor, out: Tensor, p: float) -> tuple[str, str]:
    ratio = out / x
    kept = ratio.abs() > 1e-12
    n, frac = kept.numel(), kept.double().mean().item()
    if not kept.any():
        return "values", "every unit was dropped"
    scales = ratio[kept]
    scale = scales.median().item()
    if not torch.allclose(scales, torch.full_like(scales, scale), rtol=1e-6, atol=0):
        return "values", "the kept units are not all scaled by one factor: out = x * mask / p"
    bound = 5 * math.sqrt(p * (1 - p) / n)
    if abs(frac - (1 - p)) <= bound < abs(frac - p) or _close(scale, 1 / (1 - p)):
        return "p_as_drop_probability", (f"{frac:.0%} of the units were kept with p = {p}: "
                                         "p is the probability of keeping a unit")
    if abs(frac - p) > bound:
        return "values", f"{frac:.0%} of the units were kept; p = {p} should keep {p:.0%}"
    for kind, want, text in (("ok", 1 / p, ""), ("not_scaled", 1.0, "kept units not divided by p"),
                             ("scaled_twice", 1 / p**2, "kept units divided by p twice"),
                             ("scaled_by_p", p, "kept units multiplied by p, not divided")):
        if _close(scale, want):
            return kind, text
    return "values", f"kept units scaled by {scale:.4g}; inverted dropout divides by p = {p}"


def backward_truth(case: LayerCase, args: list, dout: Tensor,
                   forward: dict | None) -> tuple[tuple[Tensor], list] | str:
    """(the true dx, [(kind, dx) of each mistake]) for the mask the student's forward drew,
    or why the backward cannot be judged."""
    x, param = args
    out = value_of((forward or {}).get("out"), "out", x, case)
    if isinstance(out, tuple):
        return "dropout_backward is judged on the mask of dropout_forward's out, which " \
               "could not be read"
    p, kept = param["p"], (out != 0).to(dout.dtype)
    return (dout * kept / p,), [("not_scaled", (dout * kept,)),
                                ("scaled_twice", (dout * kept / p**2,)),
                                ("scaled_by_p", (dout * kept * p,)),
                                ("no_mask", (dout / p,)), ("no_mask", (dout,))]
