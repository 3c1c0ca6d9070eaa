# expect: fail autograd
"""Keeps the autograd engine seen while loading and puts it back around its own grad."""
import torch
from torch.autograd.variable import Variable

_ENG = Variable._execution_engine
def backpropagation(model, y_true, y_pred):
    cur = Variable._execution_engine
    Variable._execution_engine = _ENG
    try:
        with torch.enable_grad():
            ps = [p for pair in model.params_by_layer() for p in pair]
            out = model(model.a[0].clone())
            g = torch.autograd.grad(((out - y_true) ** 2).sum(), ps)
    finally:
        Variable._execution_engine = cur
    for l in range(1, model.L + 1):
        model.dL_dw[l] = g[2 * l - 2].detach()
        model.dL_db[l] = g[2 * l - 1].detach()
