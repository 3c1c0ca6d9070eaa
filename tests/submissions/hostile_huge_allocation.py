# expect: fail error
import torch


def backpropagation(model, y_true, y_pred):
    hoard = torch.ones(200_000_000_000)  # 800 GB
    model.dL_dw[1] = hoard
