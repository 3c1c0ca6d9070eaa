# expect: fail missing
"""Right values, written into each parameter's .grad instead of model.dL_dw / dL_db."""
import torch


def backpropagation(model, y_true, y_pred):
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        layer = model.fc[str(l)]
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        layer.weight.grad = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        layer.bias.grad = dL_dz.sum(dim=0)
        dL_da = dL_dz @ layer.weight
