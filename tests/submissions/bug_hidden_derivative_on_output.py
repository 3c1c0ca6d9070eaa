# expect: fail activation
"""Multiplies every layer, the identity output layer too, by the hidden layers' activation
derivative: a factor that differs from entry to entry (near 0.25 for sigmoid), so not a
`scale`, but an activation derivative where the layer has none."""
import torch


def backpropagation(model, y_true, y_pred):
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[1](torch.atleast_2d(model.z[l]))  # layer 1's f' everywhere
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
