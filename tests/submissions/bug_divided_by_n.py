# expect: fail mean
import torch


def backpropagation(model, y_true, y_pred):
    y_pred, y_true = torch.atleast_2d(y_pred), torch.atleast_2d(y_true)
    dL_da = 2 * (y_pred - y_true) / y_pred.shape[0]
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
