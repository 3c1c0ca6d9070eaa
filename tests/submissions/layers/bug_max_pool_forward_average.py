# expect-layers: fail average max_pool_forward
import numpy as np


def max_pool_forward(x, pool_param):
    x = np.asarray(x)
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].mean(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    dout = np.asarray(dout)
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(*x.shape[:2], -1)
            first = np.eye(ph * pw)[window.argmax(axis=-1)].reshape(*x.shape[:2], ph, pw)
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += first * dout[:, :, i, j, None, None]
    return dx
