# expect: fail load
"""Computes the right gradients only when it escaped: by reaching a multiprocessing fork
server's socket (whose server would run any pickle it is sent, outside the child), or by
unmounting the child's /proc to see the host's. Confined, it fails to load."""
import ctypes
import glob
import os
import socket
import tempfile

import torch

sockets = [p for d in {"/tmp", tempfile.gettempdir(), "/var/tmp", "/dev/shm"}
           for p in glob.glob(os.path.join(d, "pymp-*", "listener-*"))]
sockets += glob.glob("/proc/[0-9]*/root/tmp/pymp-*/listener-*")
reached = []
for path in sockets:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)  # connecting is enough: sending a pickle would run it
        reached.append(path)
    except OSError:
        pass
unmounted = ctypes.CDLL(None, use_errno=True).umount2(b"/proc", 2) == 0  # MNT_DETACH
if not reached and not unmounted:
    raise RuntimeError("confined: no fork server socket reachable and /proc locked")


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        dL_dz = torch.atleast_2d(dL_da * model.df[l](model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
