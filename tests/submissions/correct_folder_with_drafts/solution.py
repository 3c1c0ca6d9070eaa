# expect: pass
import torch


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        dL_dz = torch.atleast_2d(dL_da * model.df[l](model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
