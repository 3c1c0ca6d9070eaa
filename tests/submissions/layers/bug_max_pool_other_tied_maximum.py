# expect-layers: fail other_tied_maximum max_pool_backward
import torch


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = torch.zeros(N, C, Ho, Wo, dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].amax(dim=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = torch.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
            mask = first_max(window.flip(2, 3)).flip(2, 3)  # the last maximum
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += mask * dout[:, :, i, j, None, None]
    return dx


def first_max(window):
    """1 at the first maximum (row-major) of each window, 0 elsewhere."""
    flat = window.reshape(window.shape[0], window.shape[1], -1)
    first = torch.nn.functional.one_hot(flat.argmax(-1), flat.shape[-1])
    return first.reshape(window.shape).to(window.dtype)
