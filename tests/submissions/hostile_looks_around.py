# expect: pass
"""Right gradients; prints, as one JSON line, what it can see of the machine: the root,
/tmp, its working folder and HOME, its own submission, the processes in /proc, its open
descriptors, and whether the files a grader keeps around exist (tests/grade reads it)."""
import json
import os

import torch


def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return type(e).__name__


seen = {p: listing(p) for p in ("/", "/tmp", os.getcwd(), os.environ["HOME"], "/sandbox",
                                "/etc", "/dev", "/home", "/root")}
seen["cwd"] = os.getcwd()
seen["pids"] = [p for p in listing("/proc") if p.isdigit()]
seen["fds"] = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in listing("/proc/self/fd")
               if os.path.lexists(f"/proc/self/fd/{fd}")}
print("SEEN " + json.dumps(seen))


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        dL_dz = torch.atleast_2d(dL_da * model.df[l](model.z[l]))
        model.dL_dw[l] = dL_dz.T @ torch.atleast_2d(model.a[l - 1])
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ model.fc[str(l)].weight
