"""Regenerate the figures of docs/backprop.md: the backward-pass diagram, and figures from
real handgrad runs.

    .venv/bin/python docs/make_figures.py            # embedded digits, a minute on 2 cores
    .venv/bin/python docs/make_figures.py --data-dir ../shared/data/cifar10 --dataset cifar10

Each figure trains the same network from the same start with one setting changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from handgrad.data import load_dataset
from handgrad.engine.losses import get_loss
from handgrad.report import plots
from handgrad.report.diagram import diagram
from handgrad.run.config import TrainConfig
from handgrad.run.metrics import evaluate, one_hot
from handgrad.run.train import build_model, make_step

OUT = Path(__file__).resolve().parent / "figures"


def history(config: TrainConfig, data) -> dict[str, list[float]]:
    """Validation loss and ‖W‖ (all weights, Frobenius) after every epoch."""
    model = build_model(config, data.D, data.num_classes)
    step = make_step(config, model, get_loss(config.loss))
    gen = torch.Generator().manual_seed(config.seed)
    out = {"val_loss": [], "weight_norm": []}
    for _ in range(config.epochs):
        for x, y in data.batches(data.train, config.batch_size, gen):
            step(x, one_hot(y, data.num_classes, torch.float32))
        out["val_loss"].append(evaluate(model, data, data.val, get_loss(config.loss),
                                        torch.float32).loss)
        norm = sum(model.weight(l).detach().pow(2).sum() for l in range(1, model.L + 1))
        out["weight_norm"].append(float(norm) ** 0.5)
    return out


def figure(path: Path, runs: dict[str, dict], key: str, ylabel: str, title: str) -> None:
    fig, (ax,) = plots.new_figure(6, 4)
    for label, h in runs.items():
        ax.plot(range(1, len(h[key]) + 1), h[key], marker="o", markersize=3, label=label)
    plots.epoch_axis(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))  # outside the curves
    plots.save(fig, path)


def backward_svg() -> Path:
    """The exercise's network, forward and backward (tests/report/test_diagram.py checks it
    is what handgrad draws)."""
    return diagram([3072, 512, 128, 32, 2], "relu", loss="cross_entropy").save(
        OUT / "backward.svg")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--epochs", type=int, default=40)
    args = p.parse_args()
    backward_svg()
    data = load_dataset(args.dataset, args.data_dir, seed=0)
    base = TrainConfig(dataset=args.dataset, epochs=args.epochs, lr=0.01)
    OUT.mkdir(exist_ok=True)
    momentum = {f"momentum {m}": history(base.replace(momentum=m), data) for m in (0.0, 0.5, 0.9)}
    figure(OUT / "momentum.png", momentum, "val_loss", "validation loss",
           f"SGD lr 0.01 on {args.dataset}: momentum speeds descent")
    decay = {f"weight decay {wd}": history(base.replace(momentum=0.9, weight_decay=wd), data)
             for wd in (0.0, 0.01, 0.1)}
    figure(OUT / "weight_decay.png", decay, "weight_norm", "‖W‖ (all layers)",
           f"SGD lr 0.01, momentum 0.9 on {args.dataset}: weight decay shrinks weights")
    figure(OUT / "weight_decay_loss.png", decay, "val_loss", "validation loss",
           f"SGD lr 0.01, momentum 0.9 on {args.dataset}: weight decay and validation loss")


if __name__ == "__main__":
    main()
