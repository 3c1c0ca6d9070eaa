import torch


def loss_derivative(y_pred, y_true):
    return torch.atleast_2d(2 * (y_pred - y_true))


def layer_backward(model, l, dL_da):
    dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
    dW = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
    return dW, dL_dz.sum(dim=0), dL_dz @ model.fc[str(l)].weight
