# expect: pass
"""One sample at a time, accumulating into zero buffers."""
import torch


def backpropagation(model, y_true, y_pred):
    X = model.a[0].reshape(-1, model.a[0].shape[-1])
    N = X.shape[0]
    for l in range(1, model.L + 1):
        model.dL_dw[l] = torch.zeros_like(model.fc[str(l)].weight)
        model.dL_db[l] = torch.zeros_like(model.fc[str(l)].bias)
    for n in range(N):
        delta = 2 * (y_pred.reshape(N, -1)[n] - y_true.reshape(N, -1)[n])
        for l in range(model.L, 0, -1):
            z = model.z[l].reshape(N, -1)[n]
            a_prev = model.a[l - 1].reshape(N, -1)[n]
            delta = delta * model.df[l](z)
            model.dL_dw[l] += torch.outer(delta, a_prev)
            model.dL_db[l] += delta
            delta = model.fc[str(l)].weight.T @ delta
