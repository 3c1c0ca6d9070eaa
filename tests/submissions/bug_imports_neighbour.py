# expect: fail load
"""Imports another student's single-file submission from the same folder: the folder of
single files is not importable, each runs alone."""
from correct_plain import backpropagation  # noqa: F401
