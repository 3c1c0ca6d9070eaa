"""The contenders of bench_aged.py: each has `step(x (N, D) float, y (N,) int64)` training
its own copy of the exercise's network (3072→512→128→32→2, ReLU, cross-entropy, SGD lr
0.01, momentum 0.9), and the peers take the manual engine's weights and momentum with
`sync(state)`, so that a pair starts from the same point of training.

- Manual: handgrad's manual engine, built as `make_step` builds it (FlatParams, handgrad's
  SGD on θ, one-hot targets), keeping its optimizer so that the peers can copy its state;
  with `keep`, IEEE subnormals instead of flush-to-zero (as before issue 15's fix);
- TorchPeer: a plain PyTorch loop: `nn.Sequential`, `F.cross_entropy` on class indices,
  `torch.optim.SGD(foreach=True)`; with `compile`, `torch.compile` of model + loss;
- NumpyMLP: a CS231n-style numpy MLP (affine/ReLU layers with caches, softmax loss, the
  `sgd_momentum` rule v = μ v - lr dw, w = w + v), on the CPU only.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handgrad.engine.denormals import flush_denormals
from handgrad.engine.flat import FlatParams
from handgrad.engine.losses import get_loss
from handgrad.run.config import TrainConfig
from handgrad.run.metrics import one_hot
from handgrad.run.train import build_model, build_optimizer

LR, MOMENTUM = 0.01, 0.9
Tensor = torch.Tensor
State = list[tuple[Tensor, Tensor, Tensor, Tensor]]  # per layer: W, b, their momentum


class Manual:
    def __init__(self, batch: int, device: str, D: int, C: int, keep: bool = False) -> None:
        config = TrainConfig(batch_size=batch, lr=LR, momentum=MOMENTUM, device=device,
                             keep_denormals=keep)
        self.model = build_model(config, D, C)
        self.flat = FlatParams(self.model)
        self.opt = build_optimizer(config, [self.flat.theta])
        self.loss, self.C, self.keep = get_loss("cross_entropy"), C, keep

    @torch.no_grad()
    def step(self, x: Tensor, y: Tensor) -> None:
        y_pred = self.model(x)                                 # = make_step's manual_step
        _, dL_dy = self.loss.value_and_grad(y_pred, one_hot(y, self.C, x.dtype))
        self.flat.backward(dL_dy)
        self.opt.step()

    def run(self, batches: list[tuple[Tensor, Tensor]]) -> None:
        """Steps over `batches`; a `keep` engine switches every thread to IEEE subnormals
        for them (the mode belongs to the threads, not to a model)."""
        if self.keep:
            flush_denormals(False)
        for x, y in batches:
            self.step(x, y)
        if self.keep:
            flush_denormals(True)

    def state(self) -> State:
        """[(W_l, b_l, momentum of W_l, of b_l)] as views, in nn.Linear's shapes."""
        buf = self.opt.state[self.flat.theta].get("momentum_buffer")
        buf = torch.zeros_like(self.flat.theta) if buf is None else buf
        out = []
        for l in range(1, self.model.L + 1):
            W, b = self.model.weight(l).detach(), self.model.bias(l).detach()
            out.append((W, b, *(buf.as_strided(p.shape, p.stride(), p.storage_offset())
                                for p in (W, b))))
        return out


class TorchPeer:
    """Eager PyTorch, or with `compile` torch.compile of model + loss (`compile_s`: the
    first forward and backward, on batch (x0, y0), without an update)."""

    def __init__(self, state: State, compile: bool = False, x0=None, y0=None) -> None:
        layers: list[nn.Module] = []
        for l, (W, _, _, _) in enumerate(state, start=1):
            layers.append(nn.Linear(W.shape[1], W.shape[0], device=W.device, dtype=W.dtype))
            layers += [nn.ReLU()] if l < len(state) else []
        self.model = nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM,
                                   foreach=True)
        self.loss_of = lambda x, y: F.cross_entropy(self.model(x), y)
        self.compile_s = 0.0
        if compile:
            self.loss_of = torch.compile(self.loss_of)
            start = time.perf_counter()
            self.loss_of(x0, y0).backward()
            self.compile_s = time.perf_counter() - start
        self.sync(state)

    @torch.no_grad()
    def sync(self, state: State) -> None:
        params = list(self.model.parameters())
        for i, (W, b, mW, mb) in enumerate(state):
            for p, value, momentum in ((params[2 * i], W, mW), (params[2 * i + 1], b, mb)):
                p.copy_(value)
                self.opt.state[p]["momentum_buffer"] = momentum.clone(
                    memory_format=torch.contiguous_format)

    def step(self, x: Tensor, y: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.loss_of(x, y).backward()
        self.opt.step()


class NumpyMLP:
    """The CS231n assignment's fully connected net, in float32 numpy."""

    def __init__(self, state: State) -> None:
        self.sync(state)

    def sync(self, state: State) -> None:
        """Weights W (D, H) as CS231n stores them; velocity v = -lr · torch's momentum."""
        self.W = [W.cpu().numpy().T.copy() for W, _, _, _ in state]
        self.b = [b.cpu().numpy().copy() for _, b, _, _ in state]
        self.v = [(-LR * m).cpu().numpy().T.copy() for _, _, m, _ in state]
        self.v += [(-LR * m).cpu().numpy().copy() for _, _, _, m in state]

    def step(self, x_t: Tensor, y_t: Tensor) -> None:
        x, y = x_t.numpy(), y_t.numpy()
        caches, a = [], x
        for l, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            z = a @ W + b                                          # affine_forward
            caches.append((a, z))
            a = np.maximum(z, 0) if l < len(self.W) - 1 else z     # relu_forward
        p = np.exp(a - a.max(axis=1, keepdims=True))               # softmax_loss
        p /= p.sum(axis=1, keepdims=True)
        N = x.shape[0]
        dout = p
        dout[np.arange(N), y] -= 1
        dout /= N
        dW, db = [None] * len(self.W), [None] * len(self.W)
        for l in range(len(self.W) - 1, -1, -1):
            a_prev, _ = caches[l]
            dW[l], db[l] = a_prev.T @ dout, dout.sum(axis=0)       # affine_backward
            if l:
                dout = (dout @ self.W[l].T) * (caches[l - 1][1] > 0)   # relu_backward
        for w, g, v in zip(self.W + self.b, dW + db, self.v, strict=True):  # sgd_momentum
            v *= MOMENTUM
            v -= LR * g
            w += v
