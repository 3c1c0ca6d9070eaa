# expect: fail not_tensor
import numpy as np


def backpropagation(model, y_true, y_pred):
    delta = np.atleast_2d(2 * (y_pred.numpy() - y_true.numpy()))
    for l in range(model.L, 0, -1):
        delta = delta * model.df[l](model.z[l]).numpy().reshape(delta.shape)
        model.dL_dw[l] = delta.T @ np.atleast_2d(model.a[l - 1].numpy())
        model.dL_db[l] = delta.sum(axis=0)
        delta = delta @ model.fc[str(l)].weight.detach().numpy()
