# expect: fail zero
"""Tampers with handgrad's grading modules in its own process, then returns zeros."""
import torch

import handgrad
import handgrad.grade.grader as grader
import handgrad.grade.judge as judge
import handgrad.grade.mistakes as mistakes
import handgrad.grade.result as result

judge.err = lambda *args, **kwargs: 0.0
judge.PASS_TOL = float("inf")
mistakes.truth = lambda *args, **kwargs: None
result.CheckResult.passed = property(lambda self: True)
grader.check_backprop = lambda *args, **kwargs: None
handgrad.check_backprop = grader.check_backprop


def backpropagation(model, y_true, y_pred):
    for l in range(1, model.L + 1):
        model.dL_dw[l] = torch.zeros_like(model.fc[str(l)].weight)
        model.dL_db[l] = torch.zeros_like(model.fc[str(l)].bias)
