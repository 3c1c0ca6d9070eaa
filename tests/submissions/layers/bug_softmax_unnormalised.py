# expect-layers: fail unnormalised softmax_loss
import torch


def softmax_loss(x, y):
    N = x.shape[0]
    shifted = x - x.max(dim=1, keepdim=True).values
    probs = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
    loss = -torch.log(probs[torch.arange(N), y]).mean()
    dx = shifted.exp()  # softmax without its sum
    dx[torch.arange(N), y] -= 1
    dx = dx / N
    return loss, dx
