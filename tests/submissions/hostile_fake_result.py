# expect: fail
"""Writes a results file of its own making where the grader's child writes one, then
exits with code 0 before the grader's code can run."""
import os

import torch

from handgrad.grade.cases import CASES
from handgrad.grade.sandbox.runner import encode

results = []
for case in CASES:
    sizes = case.sizes
    results.append({
        "dw": [{"type": "tensor", "shape": [sizes[l], sizes[l - 1]],
                "value": torch.zeros(sizes[l], sizes[l - 1])} for l in range(1, len(sizes))],
        "db": [{"type": "tensor", "shape": [sizes[l]], "value": torch.zeros(sizes[l])}
               for l in range(1, len(sizes))],
        "params": {}, "autograd": []})
with open("result.pt", "wb") as f:
    f.write(encode({"status": "ok", "results": results}))
os._exit(0)
