# expect-layers: fail unstable softmax_loss
import torch


def softmax_loss(x, y):
    N = x.shape[0]
    shifted = x  # no max-shift
    probs = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
    loss = -torch.log(probs[torch.arange(N), y]).mean()
    dx = probs.clone()
    dx[torch.arange(N), y] -= 1
    dx = dx / N
    return loss, dx
