"""Checking gradients: against autograd and finite differences (`gradcheck`), and grading a
student's hand-written backward pass (`grader`)."""
