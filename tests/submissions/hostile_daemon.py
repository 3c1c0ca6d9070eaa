# expect: pass
"""Right gradients, and a daemon (double fork, its own session) left running: it must not
outlive the grading."""
import os

import torch

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4242.4242"])
    os._exit(0)


def backpropagation(model, y_true, y_pred):
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
