"""The problems each layer is graded on: public shapes, secret values.

A case is a layer, a name, its settings and a seed. Its float64 inputs (and the upstream
gradient `dout` its backward receives) are drawn from the seed mixed with the grading
process's secret salt (`grader.case_salt`), so answers prepared ahead of time match nothing.
Each case is there for a reason, written in its name: exact zeros for ReLU, tied maxima and
overlapping windows for max pooling, a tiny variance where a forgotten eps shows, stride and
padding for the convolution, logits near 1000 (exp overflows without the max-shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class LayerCase:
    layer: str
    name: str
    seed: int
    settings: tuple[tuple[str, Any], ...] = ()
    train: bool = True  # False: an evaluation-mode forward (its backward is not graded)

    def setting(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)

    def inputs(self, salt: int = 0) -> dict[str, Any]:
        """{"args": the forward's arguments (tensors and param dicts), "dout": the upstream
        gradient of the backward (None for softmax_loss)}, float64, the same for a salt."""
        seed = self.seed if salt == 0 else (salt * 1_000_003 + self.seed) % 2**62
        gen = torch.Generator().manual_seed(seed)
        args = _MAKERS[self.layer](self, gen)
        return {"args": args, "dout": _dout(self, args, gen)}


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _affine(case: LayerCase, gen: torch.Generator) -> list:
    x_shape, m = case.setting("x"), case.setting("M")
    d = torch.Size(x_shape[1:]).numel()
    return [_randn(gen, *x_shape), _randn(gen, d, m), _randn(gen, m)]


def _relu(case: LayerCase, gen: torch.Generator) -> list:
    shape = case.setting("x")
    if case.setting("zeros"):  # values in {-1, -0.5, 0, 0.5, 1}: many exact zeros
        return [torch.randint(-2, 3, shape, generator=gen).double() / 2]
    return [_randn(gen, *shape)]


def _norm_input(case: LayerCase, gen: torch.Generator) -> Tensor:
    n, d = case.setting("N"), case.setting("D")
    scale = case.setting("scale", 1.0) * (1 + 2 * torch.rand(d, generator=gen, dtype=torch.float64))
    return _randn(gen, n, d) * scale + 3 * case.setting("scale", 1.0) * _randn(gen, d)


def _batchnorm(case: LayerCase, gen: torch.Generator) -> list:
    x = _norm_input(case, gen)
    d = x.shape[1]
    param = {"mode": "train" if case.train else "test", "eps": 1e-5, "momentum": 0.9,
             "running_mean": _randn(gen, d), "running_var": 0.5 + torch.rand(
                 d, generator=gen, dtype=torch.float64)}
    return [x, _randn(gen, d), _randn(gen, d), param]


def _layernorm(case: LayerCase, gen: torch.Generator) -> list:
    x = _norm_input(case, gen).T.contiguous()  # (N, D) with the scales along each row
    d = x.shape[1]
    return [x, _randn(gen, d), _randn(gen, d), {"eps": 1e-5}]


def _dropout(case: LayerCase, gen: torch.Generator) -> list:
    shape = case.setting("x")
    sign = torch.randint(0, 2, shape, generator=gen).double() * 2 - 1
    x = sign * (0.5 + torch.rand(shape, generator=gen, dtype=torch.float64))  # no zeros
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    return [x, {"p": case.setting("p"), "mode": "train" if case.train else "test",
                "seed": seed}]


def _conv(case: LayerCase, gen: torch.Generator) -> list:
    n, c, h, w = case.setting("x")
    f, hh, ww = case.setting("w")
    param = {"stride": case.setting("stride"), "pad": case.setting("pad")}
    return [_randn(gen, n, c, h, w), _randn(gen, f, c, hh, ww), _randn(gen, f), param]


def _max_pool(case: LayerCase, gen: torch.Generator) -> list:
    shape = case.setting("x")
    x = (torch.randint(0, 3, shape, generator=gen).double() if case.setting("ties")
         else _randn(gen, *shape))
    ph, pw, stride = case.setting("pool")
    return [x, {"pool_height": ph, "pool_width": pw, "stride": stride}]


def _softmax(case: LayerCase, gen: torch.Generator) -> list:
    n, c = case.setting("N"), case.setting("C")
    x = _randn(gen, n, c) * 3 + case.setting("offset", 0.0)  # exp(1000) overflows
    return [x, torch.randint(0, c, (n,), generator=gen)]


_MAKERS = {"affine": _affine, "relu": _relu, "batchnorm": _batchnorm, "layernorm": _layernorm,
           "dropout": _dropout, "conv": _conv, "max_pool": _max_pool,
           "softmax_loss": _softmax}


def _dout(case: LayerCase, args: list, gen: torch.Generator) -> Tensor | None:
    """A random upstream gradient of the forward output's shape."""
    from handgrad.grade.layers.reference import forward

    if case.layer == "softmax_loss":
        return None
    return _randn(gen, *forward(case, args)[0].shape)


def _cases() -> tuple[LayerCase, ...]:
    c = LayerCase
    return (
        c("affine", "x (4, 5), w (5, 3)", 1, (("x", (4, 5)), ("M", 3))),
        c("affine", "x (3, 2, 3): reshaped to (3, 6)", 2, (("x", (3, 2, 3)), ("M", 4))),
        c("affine", "square w (4, 4)", 3, (("x", (5, 4)), ("M", 4))),
        c("relu", "x (4, 6)", 11, (("x", (4, 6)),)),
        c("relu", "x (5, 4) with exact zeros", 12, (("x", (5, 4)), ("zeros", True))),
        c("batchnorm", "N=6 D=4", 21, (("N", 6), ("D", 4))),
        c("batchnorm", "N=3 D=5", 22, (("N", 3), ("D", 5))),
        c("batchnorm", "N=5 D=3, variance ~1e-6 (eps matters)", 23,
          (("N", 5), ("D", 3), ("scale", 1e-3))),
        c("batchnorm", "N=4 D=3, mode 'test'", 24, (("N", 4), ("D", 3)), train=False),
        c("layernorm", "N=4 D=6", 31, (("N", 6), ("D", 4))),
        c("layernorm", "N=5 D=3", 32, (("N", 3), ("D", 5))),
        c("layernorm", "N=3 D=5, variance ~1e-6 (eps matters)", 33,
          (("N", 5), ("D", 3), ("scale", 1e-3))),
        c("dropout", "x (40, 50), p=0.7", 41, (("x", (40, 50)), ("p", 0.7))),
        c("dropout", "x (30, 40), p=0.25", 42, (("x", (30, 40)), ("p", 0.25))),
        c("dropout", "x (4, 5), mode 'test'", 43, (("x", (4, 5)), ("p", 0.7)), train=False),
        c("conv", "x (2, 3, 5, 5), w (2, 3, 3, 3), stride 1, pad 1", 51,
          (("x", (2, 3, 5, 5)), ("w", (2, 3, 3)), ("stride", 1), ("pad", 1))),
        c("conv", "x (2, 2, 7, 5), w (3, 2, 3, 3), stride 2, pad 1", 52,
          (("x", (2, 2, 7, 5)), ("w", (3, 3, 3)), ("stride", 2), ("pad", 1))),
        c("conv", "x (1, 2, 4, 6), w (2, 2, 2, 2), stride 2, pad 0", 53,
          (("x", (1, 2, 4, 6)), ("w", (2, 2, 2)), ("stride", 2), ("pad", 0))),
        c("max_pool", "x (2, 2, 4, 4), 2x2 stride 2", 61,
          (("x", (2, 2, 4, 4)), ("pool", (2, 2, 2)))),
        c("max_pool", "x (1, 3, 5, 4), 3x2 stride 1 (overlapping)", 62,
          (("x", (1, 3, 5, 4)), ("pool", (3, 2, 1)))),
        c("max_pool", "x (2, 2, 4, 6), 2x2 stride 2, tied maxima", 63,
          (("x", (2, 2, 4, 6)), ("pool", (2, 2, 2)), ("ties", True))),
        c("softmax_loss", "N=5 C=4", 71, (("N", 5), ("C", 4))),
        c("softmax_loss", "N=3 C=6", 72, (("N", 3), ("C", 6))),
        c("softmax_loss", "N=4 C=3, logits 1000 ± 3", 73, (("N", 4), ("C", 3), ("offset", 1000.0))),
    )


CASES = _cases()


def cases_of(layer: str) -> list[LayerCase]:
    return [case for case in CASES if case.layer == layer]
