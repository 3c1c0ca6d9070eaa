# expect: fail exited
import sys

sys.exit(0)


def backpropagation(model, y_true, y_pred):
    pass
