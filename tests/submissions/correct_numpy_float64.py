# expect: pass
"""Everything in numpy float64, converted back to the weights' dtype at the end."""
import numpy as np
import torch


def backpropagation(model, y_true, y_pred):
    N = 1 if y_pred.dim() == 1 else y_pred.shape[0]
    delta = 2 * (y_pred.numpy().astype(np.float64) - y_true.numpy().astype(np.float64))
    delta = delta.reshape(N, -1)
    for l in range(model.L, 0, -1):
        W = model.fc[str(l)].weight
        z = model.z[l].numpy().astype(np.float64).reshape(N, -1)
        df = model.df[l](torch.from_numpy(z)).numpy()
        delta = delta * df
        a_prev = model.a[l - 1].numpy().astype(np.float64).reshape(N, -1)
        model.dL_dw[l] = torch.from_numpy(delta.T @ a_prev).to(W.dtype)
        model.dL_db[l] = torch.from_numpy(delta.sum(axis=0)).to(W.dtype)
        delta = delta @ W.detach().numpy().astype(np.float64)
