# expect: fail missing layer=1
def backpropagation(model, y_true, y_pred):
    L = model.L
    dL_dz = 2 * (y_pred - y_true) * model.df[L](model.z[L])
    model.dL_dw[L] = dL_dz.T @ model.a[L - 1]
    model.dL_db[L] = dL_dz.sum(dim=0)
