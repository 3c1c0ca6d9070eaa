# expect: pass
"""Correct, and prints 10 MB of debugging output: graded on its gradients, output cut."""
import torch

print("x" * 10_000_000)


def backpropagation(model, y_true, y_pred):
    print("shapes:", y_pred.shape, y_true.shape)
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
