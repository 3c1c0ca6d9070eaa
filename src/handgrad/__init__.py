"""handgrad: backpropagation written by hand, proven against autograd.

    >>> import torch, handgrad
    >>> model = handgrad.MLP([3072, 512, 128, 32, 2])
    >>> y_pred = model(torch.rand(64, 3072))
    >>> handgrad.backpropagation(model, torch.randn(64, 2), y_pred)   # fills model.dL_dw
"""

from handgrad.check.batch import grade
from handgrad.check.gradcheck import gradcheck
from handgrad.check.grader import check_backprop
from handgrad.engine import optim
from handgrad.engine.activations import ACTIVATIONS, get_activation
from handgrad.engine.backprop import backpropagation, bind_grads
from handgrad.engine.losses import LOSSES, get_loss
from handgrad.engine.model import MLP

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "backpropagation",
    "bind_grads",
    "check_backprop",
    "get_activation",
    "get_loss",
    "grade",
    "gradcheck",
    "optim",
]
