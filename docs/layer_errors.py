"""The worst relative error of each hand-written layer against torch autograd, in float64.

For every layer of handgrad.engine.layers, `--cases` random problems (shapes, strides,
paddings, modes, targets drawn from a seeded generator): the layer's output and every
gradient (input and parameters, and batch norm's running statistics) against torch.nn /
torch.nn.functional differentiated by autograd. The error of one tensor is
max |ours - torch| / max |torch|; the table shows the worst over all cases.

    .venv/bin/python docs/layer_errors.py [--cases 200] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
import torch.nn.functional as F

from handgrad.engine import layers as L

f64 = torch.float64


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    scale = theirs.abs().max().item()
    return (ours - theirs).abs().max().item() / scale if scale > 0 else 0.0


def torch_vjp(fn, tensors, dout):
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves, dout)


def randint(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (), generator=g))


def conv_case(g):
    N, C, Fn, k = randint(g, 1, 4), randint(g, 1, 4), randint(g, 1, 5), randint(g, 1, 4)
    s, p = randint(g, 1, 3), randint(g, 0, 2)
    H, W = randint(g, max(1, k - 2 * p), 12), randint(g, max(1, k - 2 * p), 12)
    x, w = torch.randn(N, C, H, W, generator=g, dtype=f64), torch.randn(Fn, C, k, k,
                                                                         generator=g, dtype=f64)
    b = torch.randn(Fn, generator=g, dtype=f64)
    out, cache = L.conv2d_forward(x, w, b, s, p)
    dout = torch.randn(out.shape, generator=g, dtype=f64)
    ref, (dx, dw, db) = torch_vjp(lambda x, w, b: F.conv2d(x, w, b, s, p), (x, w, b), dout)
    got_dx, grads = L.conv2d_backward(dout, cache)
    return {"out": (out, ref), "dx": (got_dx, dx), "dW": (grads["weight"], dw),
            "db": (grads["bias"], db)}


def pool_case(g):
    k, s = randint(g, 1, 4), randint(g, 1, 4)
    p = randint(g, 0, k // 2)
    shape = (randint(g, 1, 3), randint(g, 1, 3), randint(g, max(1, k - 2 * p), 12),
             randint(g, max(1, k - 2 * p), 12))
    x = (torch.randint(-2, 3, shape, generator=g).to(f64) if randint(g, 0, 1)
         else torch.randn(shape, generator=g, dtype=f64))        # half the cases with ties
    out, cache = L.maxpool2d_forward(x, k, s, p)
    dout = torch.randn(out.shape, generator=g, dtype=f64)
    ref, (dx,) = torch_vjp(lambda x: F.max_pool2d(x, k, s, p), (x,), dout)
    return {"out": (out, ref), "dx": (L.maxpool2d_backward(dout, cache)[0], dx)}


def batchnorm_case(g):
    spatial, training = randint(g, 0, 1), bool(randint(g, 0, 1))
    shape = ((randint(g, 2, 6), randint(g, 1, 6), randint(g, 1, 5), randint(g, 1, 5))
             if spatial else (randint(g, 2, 32), randint(g, 1, 16)))
    D = shape[1]
    x = 3 * torch.randn(shape, generator=g, dtype=f64) + 1
    gamma, beta = torch.randn(D, generator=g, dtype=f64), torch.randn(D, generator=g, dtype=f64)
    rm, rv = torch.randn(D, generator=g, dtype=f64), torch.rand(D, generator=g, dtype=f64) + .5
    rm_t, rv_t = rm.clone(), rv.clone()
    out, cache = L.batchnorm_forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
    dout = torch.randn(shape, generator=g, dtype=f64)
    ref, (dx, dg, db) = torch_vjp(lambda x, g_, b: F.batch_norm(
        x, rm_t, rv_t, g_, b, training, 0.1, 1e-5), (x, gamma, beta), dout)
    got_dx, grads = L.batchnorm_backward(dout, cache)
    return {"out": (out, ref), "dx": (got_dx, dx), "dgamma": (grads["weight"], dg),
            "dbeta": (grads["bias"], db), "running_mean": (rm, rm_t),
            "running_var": (rv, rv_t)}


def layernorm_case(g):
    N, D = randint(g, 1, 32), randint(g, 2, 32)
    x = 2 * torch.randn(N, D, generator=g, dtype=f64)
    gamma, beta = torch.randn(D, generator=g, dtype=f64), torch.randn(D, generator=g, dtype=f64)
    out, cache = L.layernorm_forward(x, gamma, beta)
    dout = torch.randn(N, D, generator=g, dtype=f64)
    ref, (dx, dg, db) = torch_vjp(lambda x, g_, b: F.layer_norm(x, (D,), g_, b),
                                  (x, gamma, beta), dout)
    got_dx, grads = L.layernorm_backward(dout, cache)
    return {"out": (out, ref), "dx": (got_dx, dx), "dgamma": (grads["weight"], dg),
            "dbeta": (grads["bias"], db)}


def dropout_case(g):
    N, D, seed = randint(g, 1, 32), randint(g, 1, 32), randint(g, 0, 10**6)
    p = float(torch.rand((), generator=g)) * 0.9
    x, dout = (torch.randn(N, D, generator=g, dtype=f64) for _ in range(2))
    out, mask = L.dropout_forward(x, p, True, torch.Generator().manual_seed(seed))
    ref, (dx,) = torch_vjp(lambda x: L.dropout_forward(
        x, p, True, torch.Generator().manual_seed(seed))[0], (x,), dout)
    kept = out != 0
    return {"out (kept / x = 1/(1-p))": (out[kept], x[kept] / (1 - p)),
            "dx (autograd, same mask)": (L.dropout_backward(dout, mask)[0], dx)}


def softmax_case(g):
    N, C = randint(g, 1, 32), randint(g, 2, 10)
    x = torch.randn(N, C, generator=g, dtype=f64) * (1e3 if randint(g, 0, 1) else 1)
    y = (torch.randint(0, C, (N,), generator=g) if randint(g, 0, 1)
         else torch.softmax(torch.randn(N, C, generator=g, dtype=f64), 1))
    loss, cache = L.softmax_cross_entropy_forward(x, y)
    ref, (dx,) = torch_vjp(lambda x: F.cross_entropy(x, y), (x,), torch.tensor(1.0, dtype=f64))
    return {"loss": (loss, ref), "dx": (L.softmax_cross_entropy_backward(1.0, cache)[0], dx)}


def flatten_case(g):
    shape = tuple(randint(g, 1, 5) for _ in range(4))
    x = torch.randn(shape, generator=g, dtype=f64)
    out, cache = L.flatten_forward(x)
    dout = torch.randn(out.shape, generator=g, dtype=f64)
    ref, (dx,) = torch_vjp(lambda x: torch.flatten(x, 1), (x,), dout)
    return {"out": (out, ref), "dx": (L.flatten_backward(dout, cache)[0], dx)}


CASES = {"batchnorm": batchnorm_case, "layernorm": layernorm_case, "dropout": dropout_case,
         "conv2d": conv_case, "maxpool2d": pool_case, "softmax_cross_entropy": softmax_case,
         "flatten": flatten_case}


def worst_errors(cases: int, seed: int) -> dict[str, dict[str, float]]:
    g = torch.Generator().manual_seed(seed)
    worst: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, case in CASES.items():
        for _ in range(cases):
            for quantity, (ours, theirs) in case(g).items():
                if theirs.numel():
                    worst[name][quantity] = max(worst[name][quantity], rel_err(ours, theirs))
    return worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    worst = worst_errors(args.cases, args.seed)
    print(f"worst relative error against torch autograd, float64, {args.cases} random cases "
          "a layer")
    print(f"{'layer':<22} {'tensor':<28} {'worst':>10}")
    for name, quantities in worst.items():
        for quantity, err in quantities.items():
            print(f"{name:<22} {quantity:<28} {err:10.2e}")
        print(f"{name:<22} {'(all)':<28} {max(quantities.values()):10.2e}")


if __name__ == "__main__":
    main()
