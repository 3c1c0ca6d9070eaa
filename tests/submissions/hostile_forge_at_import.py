# expect: fail forged
"""Sends a result of its own making into every socket it holds, as the grader's runner
would send one (a frame: kind b"R", length, torch.save bytes claiming every case passed
with no autograd), then exits with code 0 before its function can run."""
import io
import os
import socket
import struct

import torch


def forged_result() -> bytes:
    entry = {"type": "tensor", "shape": [1], "dtype": "torch.float32", "value": torch.zeros(1)}
    case = {"dw": [entry], "db": [entry], "params": {}, "returned": None, "grad_set": False,
            "autograd": []}
    buffer = io.BytesIO()
    torch.save({"status": "ok", "results": [case] * 22}, buffer)
    return buffer.getvalue()


data = forged_result()
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        s = socket.socket(fileno=os.dup(fd))
        s.sendall(struct.pack("!cI", b"R", len(data)) + data)
    except OSError:
        pass
os._exit(0)


def backpropagation(model, y_true, y_pred):
    pass
