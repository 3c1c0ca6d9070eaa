# expect: fail modified
import torch


def backpropagation(model, y_true, y_pred):
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        layer = model.fc[str(l)]
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ layer.weight
        layer.weight -= 0.01 * model.dL_dw[l]  # the optimizer's job, done here
        layer.bias -= 0.01 * model.dL_db[l]
