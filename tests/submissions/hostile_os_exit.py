# expect: fail exited
import os


def backpropagation(model, y_true, y_pred):
    os._exit(0)
