# expect: pass
"""Right, and writes a scratch file by a relative path, in its fresh working directory."""
from pathlib import Path

import torch

Path("notes.txt").write_text("my scratch\n")
with open("notes.txt", "a") as f:
    f.write("more\n")


def backpropagation(model, y_true, y_pred):
    g = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        d = g * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = d.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = d.sum(0)
        g = d @ model.fc[str(l)].weight
