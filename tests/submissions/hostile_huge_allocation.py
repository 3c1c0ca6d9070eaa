# expect: fail memory
"""Asks for 6 GB: more than the address space the grader allows a submission (4 GB by
default), though this machine could give it."""


def backpropagation(model, y_true, y_pred):
    hoard = bytearray(6 * 2**30)
    model.dL_dw[1] = hoard
