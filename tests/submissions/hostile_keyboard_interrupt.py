# expect: fail exited
def backpropagation(model, y_true, y_pred):
    raise KeyboardInterrupt
