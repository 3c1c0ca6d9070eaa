# expect: fail activation layer=2
def backpropagation(model, y_true, y_pred):
    delta = 2 * (y_pred - y_true)
    for l in range(model.L, 0, -1):
        delta = delta * model.f[l](model.z[l])
        model.dL_dw[l] = delta.T @ model.a[l - 1]
        model.dL_db[l] = delta.sum(0)
        delta = delta @ model.fc[str(l)].weight
