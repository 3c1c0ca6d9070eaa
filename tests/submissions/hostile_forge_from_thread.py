# expect: fail forged
"""Computes the right gradients, slowly; meanwhile a thread started at import sends a
result of its own making into every socket the process holds, once the function runs (the
cases are in the process by then): two results reach the keeper, and the grader fails it."""
import contextlib
import io
import os
import socket
import struct
import threading
import time

import torch

running = threading.Event()


def forge() -> None:
    running.wait()
    buffer = io.BytesIO()
    torch.save({"status": "ok", "results": []}, buffer)
    data = buffer.getvalue()
    for fd in map(int, os.listdir("/proc/self/fd")):
        with contextlib.suppress(OSError):
            socket.socket(fileno=os.dup(fd)).sendall(struct.pack("!cI", b"R", len(data)) + data)


threading.Thread(target=forge, daemon=True).start()


def backpropagation(model, y_true, y_pred):
    running.set()
    time.sleep(0.05)
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        dL_dz = torch.atleast_2d(dL_da * model.df[l](model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
