# expect: fail exited
import sys


def backpropagation(model, y_true, y_pred):
    sys.exit(0)
