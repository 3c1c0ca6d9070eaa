# expect: pass
"""A student folder: the solution imports a helper module that sits beside it."""
from my_helpers import layer_backward, loss_derivative


def backpropagation(model, y_true, y_pred):
    dL_da = loss_derivative(y_pred, y_true)
    for l in range(model.L, 0, -1):
        model.dL_dw[l], model.dL_db[l], dL_da = layer_backward(model, l, dL_da)
