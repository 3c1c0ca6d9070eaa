# expect: fail error
"""Tries to make the file system writable again from inside the grader's child, then to
write outside its working directory."""
import ctypes
import os

import torch

MS_REMOUNT, MS_BIND = 32, 4096
TARGET = "/usr/handgrad-hostile-was-here"  # /tmp is its own scratch folder: /usr is not
libc = ctypes.CDLL(None, use_errno=True)
for target in (b"/", b"/tmp", os.path.dirname(TARGET).encode()):
    libc.mount(None, target, None, MS_REMOUNT | MS_BIND, None)


def backpropagation(model, y_true, y_pred):
    with open(TARGET, "w") as f:
        f.write("written by a submission\n")
    dL_da = torch.atleast_2d(2 * (y_pred - y_true))
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](torch.atleast_2d(model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
