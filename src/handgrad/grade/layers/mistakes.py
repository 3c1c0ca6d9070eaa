"""The classic mistakes of each layer, as the numbers they produce.

For each case the judge computes, in float64, what a function with each mistake returns,
and names a mistake only when the student's output matches it (`judge.py`). A mistake is a
variant of the true computation: a graph with one path cut (`detach`), a reduction over
another axis, a loop with one index wrong.

| layer        | backward mistakes                                                  |
|--------------|--------------------------------------------------------------------|
| affine       | bias_mean                                                          |
| relu         | mask_from_dout, mask_at_zero (x >= 0), no_mask, mask_inverted      |
| batchnorm,   | no_mean_path, no_variance_path, statistics_constant, wrong_axis,   |
| layernorm    | unbiased_variance, eps_forgotten, dgamma_from_x                    |
| conv         | kernel_flip, dw_flipped, padding_offset, stride_ignored, bias_mean |
| max_pool     | every_element, average, all_tied_maxima, other_tied_maximum,       |
|              | overlap_overwritten                                                |
| softmax_loss | no_mean, shift_in_gradient, unnormalised, no_onehot                |

Forward mistakes: batchnorm/layernorm unbiased_variance, eps_forgotten, wrong_axis,
momentum_reversed, running_var_unbiased, running_stats_not_updated, eval_batch_statistics;
conv kernel_flip; max_pool average. Mistakes seen in the shapes (a transposed dw, an
unsummed bias, an uncropped dx) are named by `judge.py`; dropout's by `dropout.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handgrad.grade.layers.cases import LayerCase
from handgrad.grade.layers.reference import backward, forward

Tensor = torch.Tensor
Mistakes = list[tuple[str, tuple[Tensor, ...]]]


def backward_mistakes(case: LayerCase, args: list, dout: Tensor | None) -> Mistakes:
    """[(kind, what the backward returns with that mistake)] for one case."""
    maker = _BACKWARD.get(case.layer)
    return maker(case, args, dout) if maker else []


def forward_mistakes(case: LayerCase, args: list) -> list[tuple[str, dict[str, Tensor]]]:
    """[(kind, {"out": …, and batchnorm's running statistics})] for one case."""
    if case.layer in ("batchnorm", "layernorm"):
        return _norm_forward(case, args)
    if case.layer == "conv":
        x, w, b, p = args
        return [("kernel_flip", {"out": F.conv2d(x, w.flip(2, 3), b, p["stride"], p["pad"])})]
    if case.layer == "max_pool":
        x, p = args
        return [("average", {"out": F.avg_pool2d(x, (p["pool_height"], p["pool_width"]),
                                                 p["stride"])})]
    return []


def _affine(case: LayerCase, args: list, dout: Tensor) -> Mistakes:
    dx, dw, db = backward(case, args, dout)
    return [("bias_mean", (dx, dw, db / dout.shape[0]))]


def _relu(case: LayerCase, args: list, dout: Tensor) -> Mistakes:
    x = args[0]
    return [("mask_from_dout", (dout * (dout > 0),)), ("mask_at_zero", (dout * (x >= 0),)),
            ("no_mask", (dout,)), ("mask_inverted", (dout * (x < 0),))]


def normalise(x: Tensor, gamma: Tensor, beta: Tensor, eps: float, axis: int,
              correction: int = 0, mean_path: bool = True, var_path: bool = True) -> Tensor:
    """γ (x - μ) / √(σ² + eps) + β over `axis`, with the paths through μ or σ² cut when
    asked (their gradient left out) and σ² with `correction` (1: unbiased)."""
    mu = x.mean(axis, keepdim=True)
    mu = mu if mean_path else mu.detach()
    var = ((x - mu) ** 2).sum(axis, keepdim=True) / (x.shape[axis] - correction)
    var = var if var_path else var.detach()
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


def _norm_grads(args: list, dout: Tensor, axis: int, **mistake) -> tuple[Tensor, ...]:
    x, gamma, beta, param = args
    leaves = [t.detach().clone().requires_grad_() for t in (x, gamma, beta)]
    with torch.enable_grad():
        out = normalise(*leaves, param["eps"] if "eps" not in mistake else mistake.pop("eps"),
                        axis, **mistake)
        return torch.autograd.grad(out, leaves, dout)


def compact(args: list, dout: Tensor, axis: int, mean_axis: int,
            correction: int = 0) -> tuple[Tensor, ...]:
    """The compact backward, dx = (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ, with the statistics
    over `axis` (and σ² with `correction`) and the means of the formula over `mean_axis`:
    the right answer when both are the layer's axis and correction is 0."""
    x, gamma, _, param = args
    mu, var = x.mean(axis, keepdim=True), x.var(axis, keepdim=True, correction=correction)
    std = torch.sqrt(var + param["eps"])
    xhat, dxhat = (x - mu) / std, dout * gamma
    dx = (dxhat - dxhat.mean(mean_axis, keepdim=True)
          - xhat * (dxhat * xhat).mean(mean_axis, keepdim=True)) / std
    return dx, (dout * xhat).sum(0), dout.sum(0)


def _norm(case: LayerCase, args: list, dout: Tensor) -> Mistakes:
    axis = 0 if case.layer == "batchnorm" else 1
    x, gamma, beta, param = args
    dx, dgamma, dbeta = backward(case, args, dout)
    other = 1 - axis
    return [
        ("no_mean_path", _norm_grads(args, dout, axis, mean_path=False)),
        ("no_variance_path", _norm_grads(args, dout, axis, var_path=False)),
        ("statistics_constant", _norm_grads(args, dout, axis, mean_path=False,
                                            var_path=False)),
        ("wrong_axis", compact(args, dout, axis, other)),
        ("wrong_axis", _norm_grads(args, dout, other)),
        ("unbiased_variance", _norm_grads(args, dout, axis, correction=1)),
        ("unbiased_variance", compact(args, dout, axis, axis, correction=1)),
        ("eps_forgotten", _norm_grads(args, dout, axis, eps=0.0)),
        ("dgamma_from_x", (dx, (dout * x).sum(0), dbeta)),
    ]


def _norm_forward(case: LayerCase, args: list) -> list[tuple[str, dict[str, Tensor]]]:
    axis = 0 if case.layer == "batchnorm" else 1
    x, gamma, beta, param = args
    out, extras = forward(case, args)
    if not case.train:
        train = {**param, "mode": "train"}
        return [("eval_batch_statistics", {"out": forward(case, [x, gamma, beta, train])[0]})]
    found = [(kind, {**extras, "out": normalise(x, gamma, beta, eps, ax, correction)})
             for kind, eps, ax, correction in (
                 ("unbiased_variance", param["eps"], axis, 1),
                 ("eps_forgotten", 0.0, axis, 0),
                 ("wrong_axis", param["eps"], 1 - axis, 0))]
    if case.layer == "batchnorm":
        m, rm, rv = param["momentum"], param["running_mean"], param["running_var"]
        mean, var = x.mean(0), x.var(0, correction=0)
        found += [
            ("momentum_reversed", {"out": out, "running_mean": (1 - m) * rm + m * mean,
                                   "running_var": (1 - m) * rv + m * var}),
            ("running_var_unbiased", {**extras, "out": out,
                                      "running_var": m * rv + (1 - m) * x.var(0)}),
            ("unbiased_variance", {**extras, "out": found[0][1]["out"],
                                   "running_var": m * rv + (1 - m) * x.var(0)}),
            ("running_stats_not_updated", {"out": out, "running_mean": rm,
                                           "running_var": rv})]
    return found


def conv_loops(x: Tensor, w: Tensor, dout: Tensor, stride: int, pad: int,
               step: int | None = None) -> tuple[Tensor, Tensor]:
    """(dx of the padded input, dw) as a loop over output positions writes them, the
    window of output (i, j) starting at (i·step, j·step) (step = stride is right)."""
    step = stride if step is None else step
    xp = F.pad(x, (pad, pad, pad, pad))
    dxp, dw = torch.zeros_like(xp), torch.zeros_like(w)
    hh, ww = w.shape[2:]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * step, i * step + hh), slice(j * step, j * step + ww)
            g = dout[:, :, i, j]  # (N, F)
            dw += torch.einsum("nf,nchw->fchw", g, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += torch.einsum("nf,fchw->nchw", g, w)
    return dxp, dw


def _conv(case: LayerCase, args: list, dout: Tensor) -> Mistakes:
    x, w, b, param = args
    stride, pad = param["stride"], param["pad"]
    h, wd = x.shape[2:]
    dx, dw, db = backward(case, args, dout)

    def crop(t: Tensor) -> Tensor:
        return t[:, :, pad:pad + h, pad:pad + wd]

    flipped, _ = conv_loops(x, w.flip(2, 3), dout, stride, pad)
    dxp, _ = conv_loops(x, w, dout, stride, pad)
    dxp1, dw1 = conv_loops(x, w, dout, stride, pad, step=1)
    return [("kernel_flip", (crop(flipped), dw, db)),
            ("dw_flipped", (dx, dw.flip(2, 3), db)),
            ("padding_offset", (dxp[:, :, :h, :wd], dw, db)),
            ("stride_ignored", (crop(dxp1), dw1, db)),
            ("bias_mean", (dx, dw, db / (dout.shape[2] * dout.shape[3])))]


def pool_loops(x: Tensor, dout: Tensor, param: dict, route: str) -> Tensor:
    """dx of max pooling as a loop over windows writes it, the window's gradient sent by
    `route`: "first" (right: to the first maximum), "last", "all_tied", "every",
    "average", or "overwrite" (the first maximum, the window assigned with = not +=)."""
    ph, pw, s = param["pool_height"], param["pool_width"], param["stride"]
    dx = torch.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * s, i * s + ph), slice(j * s, j * s + pw)
            win = x[:, :, rows, cols]
            g = dout[:, :, i, j][:, :, None, None]
            flat = win.reshape(*win.shape[:2], -1)
            top = flat.amax(-1, keepdim=True)
            index = flat.argmax(-1) if route != "last" else (
                flat.shape[-1] - 1 - flat.flip(-1).argmax(-1))
            first = F.one_hot(index, flat.shape[-1]).reshape(win.shape).to(x.dtype)
            share = {"all_tied": (flat == top).reshape(win.shape).to(x.dtype),
                     "every": torch.ones_like(win),
                     "average": torch.full_like(win, 1 / (ph * pw))}.get(route, first)
            if route == "overwrite":
                dx[:, :, rows, cols] = g * share
            else:
                dx[:, :, rows, cols] += g * share
    return dx


def _max_pool(case: LayerCase, args: list, dout: Tensor) -> Mistakes:
    x, param = args
    return [(kind, (pool_loops(x, dout, param, route),)) for kind, route in (
        ("every_element", "every"), ("average", "average"),
        ("all_tied_maxima", "all_tied"), ("other_tied_maximum", "last"),
        ("overlap_overwritten", "overwrite"))]


def _softmax(case: LayerCase, args: list, dout: None) -> Mistakes:
    x, y = args
    loss, dx = backward(case, args, None)
    n = x.shape[0]
    onehot = F.one_hot(y, x.shape[1]).to(x.dtype)
    shifted = torch.exp(x - x.amax(1, keepdim=True))
    return [("no_mean", (loss * n, dx * n)),
            ("shift_in_gradient", (loss, dx - dx.amax(1, keepdim=True))),
            ("unnormalised", (loss, (shifted - onehot) / n)),
            ("unnormalised", (-(x - x.amax(1, keepdim=True))[torch.arange(n), y].mean(),
                              (shifted - onehot) / n)),
            ("no_onehot", (loss, torch.softmax(x, 1) / n))]


_BACKWARD = {"affine": _affine, "relu": _relu, "batchnorm": _norm, "layernorm": _norm,
             "conv": _conv, "max_pool": _max_pool, "softmax_loss": _softmax}
