"""A correct solution of the classic exercise: the backward pass of handgrad.MLP for the
sum-of-squared-errors loss, over a batch. Grade it with:

    handgrad check-backprop examples/backprop_correct.py:backpropagation
"""


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)                      # (N, H_L): dL/da[L] for SSE
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * model.df[l](model.z[l])        # (N, H_l)
        model.dL_dw[l] = dL_dz.T @ model.a[l - 1]      # (H_l, H_{l-1}): sums over the batch
        model.dL_db[l] = dL_dz.sum(dim=0)              # (H_l,): sums over the batch
        dL_da = dL_dz @ model.fc[str(l)].weight        # (N, H_{l-1}): one row per sample
