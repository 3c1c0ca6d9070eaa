# expect: fail zero
import torch


def backpropagation(model, y_true, y_pred):
    for l in range(1, model.L + 1):
        model.dL_dw[l] = torch.zeros_like(model.fc[str(l)].weight)
        model.dL_db[l] = torch.zeros_like(model.fc[str(l)].bias)
