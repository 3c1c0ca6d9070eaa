# expect: fail timeout
"""Sleeps in its function past the wall-clock limit, using no CPU: only the timeout stops
it (the CPU limit never would)."""
import time


def backpropagation(model, y_true, y_pred):
    time.sleep(4242)
