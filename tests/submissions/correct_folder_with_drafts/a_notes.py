"""Notes, not code: the word def backpropagation in a comment must not make this the graded
file."""
# def backpropagation(model, y_true, y_pred): my first try, see solution.py
