"""The math: the MLP, its activations and losses, the hand-written backward pass, and the
optimizers that update the weights."""
