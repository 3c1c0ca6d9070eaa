# expect: fail not_tensor
import torch

import handgrad.grade.sandbox.runner as R

_orig = R._describe
def _describe(value):
    out = _orig(value)
    if out.get("type") == "tensor":
        out["value"] = torch.zeros(out["shape"]).to_sparse()   # a sparse layout the parent gets
    return out
R._describe = _describe
def backpropagation(model, y_true, y_pred):
    for l in range(1, model.L + 1):
        model.dL_dw[l] = torch.zeros_like(model.weight(l))
        model.dL_db[l] = torch.zeros_like(model.bias(l))
