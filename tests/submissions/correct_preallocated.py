# expect: pass
"""Writes into buffers shaped like the parameters, with torch.mm(out=...)."""
import torch


def backpropagation(model, y_true, y_pred):
    as2d = lambda t: t if t.dim() == 2 else t.unsqueeze(0)  # noqa: E731
    dL_da = as2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        layer = model.fc[str(l)]
        model.dL_dw[l] = torch.empty_like(layer.weight)
        model.dL_db[l] = torch.empty_like(layer.bias)
        dL_dz = dL_da * model.df[l](as2d(model.z[l]))
        torch.mm(dL_dz.t(), as2d(model.a[l - 1]), out=model.dL_dw[l])
        torch.sum(dL_dz, 0, out=model.dL_db[l])
        dL_da = dL_dz @ layer.weight
