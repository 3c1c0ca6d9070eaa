# expect: pass
import torch


def backpropagation(model, y_true, y_pred):
    g = (2 * (y_pred - y_true)).reshape(-1, y_pred.shape[-1])
    for l in reversed(range(1, model.L + 1)):
        z = model.z[l].reshape(g.shape[0], -1)
        a = model.a[l - 1].reshape(g.shape[0], -1)
        g = g * model.df[l](z)
        model.dL_dw[l] = torch.einsum("ni,nj->ij", g, a)
        model.dL_db[l] = torch.einsum("ni->i", g)
        g = torch.einsum("ni,ij->nj", g, model.fc[str(l)].weight)
