# expect: fail error
"""Computes the right gradients, but first writes a file outside its working directory."""

import torch

TARGET = "/usr/handgrad-hostile-was-here"  # /tmp is its own scratch folder: /usr is not


def backpropagation(model, y_true, y_pred):
    with open(TARGET, "w") as f:
        f.write("written by a submission\n")
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
