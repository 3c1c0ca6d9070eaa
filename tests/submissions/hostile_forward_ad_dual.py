# expect: fail autograd
"""Gradients by forward-mode dual numbers, one parameter entry at a time."""
import torch
import torch.autograd.forward_ad as fwAD


def backpropagation(model, y_true, y_pred):
    x = model.a[0]
    P = [(model.weight(l).detach(), model.bias(l).detach()) for l in range(1, model.L + 1)]
    def loss(P):
        a = x
        for l, (W, b) in enumerate(P, start=1):
            a = model.f[l](a @ W.T + b)
        return ((a - y_true) ** 2).sum()
    for l in range(1, model.L + 1):
        for k in (0, 1):
            T = P[l - 1][k]
            G = torch.zeros_like(T)
            for i in range(T.numel()):
                e = torch.zeros_like(T).view(-1)
                e[i] = 1
                with fwAD.dual_level():
                    Q = [list(p) for p in P]
                    Q[l - 1][k] = fwAD.make_dual(T, e.view_as(T))
                    G.view(-1)[i] = fwAD.unpack_dual(loss(Q)).tangent
            (model.dL_dw if k == 0 else model.dL_db)[l] = G
