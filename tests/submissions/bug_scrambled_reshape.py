# expect: fail values layer=1
"""dL/da formed with W.T.reshape(W.shape): the right shape only on square layers, the
entries scrambled. Wrong values at layer 1 on the 2-D cases, and an exception on the 1-D
case (its row of the table stays): the headline names the wrong gradient, not the exception."""


def backpropagation(model, y_true, y_pred):
    dL_da = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        W = model.fc[str(l)].weight
        dL_dz = dL_da * model.df[l](model.z[l])
        model.dL_dw[l] = dL_dz.T @ model.a[l - 1]
        model.dL_db[l] = dL_dz.sum(dim=0)
        dL_da = dL_dz @ W.T.reshape(W.shape)
