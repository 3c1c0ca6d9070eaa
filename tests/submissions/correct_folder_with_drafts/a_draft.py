"""An abandoned draft that only assigns the name."""


def _unfinished(model, y_true, y_pred):
    return None


backpropagation = _unfinished
