"""The classic exercise written the way it usually is: the baseline of bench_pipeline.py.

A DataLoader over a TensorDataset of float images, one-hot labels built by a Python list
comprehension every batch, a print every batch, a hand-written backward pass and update,
and the four configs run one after another; plus what the exercise does around them, as
`handgrad reproduce` does: a gradient check (float64, 8 images, 30 entries a tensor against
central differences, and autograd), the autograd run the exercise compares with, a test
evaluation for the config with the lowest validation loss, and the loss curves plotted.
Same network, epochs, batch size and split as `handgrad reproduce`.

    python benchmarks/baseline_exercise.py CIFAR_ROOT EPOCHS [PLOT_DIR] > log.txt
"""

from __future__ import annotations

import pickle
import random
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CONFIGS = [(0.001, 0.0, 0.0), (0.01, 0.0, 0.0), (0.001, 0.1, 0.9), (0.01, 0.0, 0.9)]


def load(root: Path, names: list[str]):
    xs, ys = [], []
    for name in names:
        with open(root / "cifar-10-batches-py" / name, "rb") as f:
            d = pickle.load(f, encoding="latin1")  # the usual (unsafe) way
        xs.append(d["data"])
        ys.extend(d["labels"])
    x = torch.tensor(np.concatenate(xs), dtype=torch.float32) / 255.0
    y = torch.tensor(ys)
    keep = (y == 0) | (y == 1)
    return x[keep], y[keep]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.L = 4
        sizes = [3072, 512, 128, 32, 2]
        self.fc = nn.ModuleDict({str(i): nn.Linear(sizes[i - 1], sizes[i]) for i in range(1, 5)})
        self.dL_dw, self.dL_db, self.z, self.a = {}, {}, {}, {}

    def forward(self, x):
        self.a[0] = x
        for l in range(1, self.L + 1):
            self.z[l] = self.fc[str(l)](self.a[l - 1])
            self.a[l] = torch.relu(self.z[l]) if l < self.L else self.z[l]
        return self.a[self.L]


def backpropagation(model, y_true, y_pred):
    dL_da = (torch.softmax(y_pred, 1) - y_true) / y_pred.shape[0]
    for l in range(model.L, 0, -1):
        dL_dz = dL_da * (model.z[l] > 0).float() if l < model.L else dL_da
        model.dL_dw[l] = dL_dz.T @ model.a[l - 1]
        model.dL_db[l] = dL_dz.sum(0)
        dL_da = dL_dz @ model.fc[str(l)].weight


def one_hot(yb):
    return torch.tensor([[1.0 if c == label else 0.0 for c in range(2)] for label in yb])


def gradient_check(x, y, entries=30, h=1e-5):
    torch.manual_seed(0)
    random.seed(0)
    model = MLP().double()
    x, t = x[:8].double(), one_hot(y[:8]).double()
    with torch.no_grad():
        backpropagation(model, t, model(x))
    loss = nn.functional.cross_entropy(model(x), t)
    loss.backward()
    for l in range(1, model.L + 1):
        fc = model.fc[str(l)]
        for name, p, manual in (("w", fc.weight, model.dL_dw[l]), ("b", fc.bias, model.dL_db[l])):
            print(f"layer {l} {name}: autograd max diff {(p.grad - manual).abs().max().item()}")
            for _ in range(entries):
                i = tuple(random.randrange(n) for n in p.shape)
                with torch.no_grad():
                    old = p[i].item()
                    p[i] = old + h
                    plus = nn.functional.cross_entropy(model(x), t).item()
                    p[i] = old - h
                    minus = nn.functional.cross_entropy(model(x), t).item()
                    p[i] = old
                numeric = (plus - minus) / (2 * h)
                error = abs(numeric - manual[i].item()) / max(abs(numeric), abs(manual[i].item()),
                                                             1e-12)
                print(f"layer {l} {name}{list(i)}: numeric {numeric} manual {manual[i].item()} "
                      f"relative error {error}")


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure()
    for label, (train_losses, val_losses) in curves.items():
        plt.plot(train_losses, label=f"{label} train")
        plt.plot(val_losses, "--", label=f"{label} val")
    plt.xlabel("epoch")
    plt.ylabel("loss")
    plt.legend()
    plt.savefig(path)
    plt.close()


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        accuracy = (out.argmax(1) == y).float().mean().item()
        return nn.functional.cross_entropy(out, y).item(), accuracy


def train(x, y, xv, yv, lr, wd, momentum, epochs, batch, manual=True):
    torch.manual_seed(0)
    model = MLP()
    bufs = {}
    opt = None if manual else torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                              weight_decay=wd)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    train_losses, val_losses = [], []
    for epoch in range(epochs):
        total = 0.0
        for i, (xb, yb) in enumerate(loader):
            t = one_hot(yb)
            if manual:
                with torch.no_grad():
                    out = model(xb)
                    loss = nn.functional.cross_entropy(out, t)
                    backpropagation(model, t, out)
                    for l in range(1, model.L + 1):
                        fc = model.fc[str(l)]
                        for key, p, g in ((f"w{l}", fc.weight, model.dL_dw[l]),
                                          (f"b{l}", fc.bias, model.dL_db[l])):
                            g = g + wd * p
                            bufs[key] = g if key not in bufs else momentum * bufs[key] + g
                            p -= lr * bufs[key]
            else:
                opt.zero_grad()
                out = model(xb)
                loss = nn.functional.cross_entropy(out, t)
                loss.backward()
                opt.step()
            print(f"epoch {epoch} batch {i} loss {loss.item():.4f}")
            total += loss.item() * len(yb)
        train_losses.append(total / len(y))
        val_losses.append(evaluate(model, xv, yv)[0])
        print("val", val_losses[-1])
    return model, (train_losses, val_losses)


def main() -> None:
    root, epochs = Path(sys.argv[1]), int(sys.argv[2])
    plot_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
    x, y = load(root, [f"data_batch_{i}" for i in range(1, 6)])
    xt, yt = load(root, ["test_batch"])
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val = len(y) // 10
    xv, yv, x, y = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
    gradient_check(x, y)
    _, autograd_curves = train(x, y, xv, yv, 0.01, 0.0, 0.9, epochs, 64, manual=False)
    best, curves = None, {}
    for lr, wd, m in CONFIGS:
        model, curves[f"lr={lr} wd={wd} m={m}"] = train(x, y, xv, yv, lr, wd, m, epochs, 64)
        val_loss, _ = evaluate(model, xv, yv)
        if best is None or val_loss < best[0]:
            best = (val_loss, model)
    print("test", evaluate(best[1], xt, yt))
    plot(curves, plot_dir / "configs.png")
    plot({"manual": curves["lr=0.01 wd=0.0 m=0.9"], "autograd": autograd_curves},
         plot_dir / "engines.png")


if __name__ == "__main__":
    main()
