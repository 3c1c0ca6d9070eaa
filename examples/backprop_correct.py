"""A correct solution of the classic exercise: the backward pass of handgrad.MLP for the
sum-of-squared-errors loss, over a batch x (N, D) or one sample x (D,). Grade it with:

    handgrad check-backprop examples/backprop_correct.py:backpropagation
"""

import torch


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)                      # (N, H_L): dL/da[L] for SSE
    for l in range(model.L, 0, -1):
        dL_dz = torch.atleast_2d(dL_da * model.df[l](model.z[l]))  # (N, H_l)
        a_prev = torch.atleast_2d(model.a[l - 1])      # (N, H_{l-1}); one sample is N = 1
        model.dL_dw[l] = dL_dz.T @ a_prev              # (H_l, H_{l-1}): sums over the batch
        model.dL_db[l] = dL_dz.sum(dim=0)              # (H_l,): sums over the batch
        dL_da = dL_dz @ model.fc[str(l)].weight        # (N, H_{l-1}): one row per sample
