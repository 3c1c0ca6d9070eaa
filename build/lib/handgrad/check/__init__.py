"""Checking a gradient: against autograd and central differences (`gradcheck`), on
reference problems whose gradients autograd computes in float64 (`reference`)."""
