# expect: fail timeout
def backpropagation(model, y_true, y_pred):
    while True:
        pass
