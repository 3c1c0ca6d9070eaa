# expect: fail autograd
"""Hands in handgrad's own backward pass."""
import handgrad


def backpropagation(model, y_true, y_pred):
    handgrad.backpropagation(model, y_true, y_pred, "sse")
