"""Subnormal floats in an aged run, and what they cost the optimizer's pass.

Trains the exercise's network with IEEE subnormals kept (lr 0.01, momentum 0.9, batch 64,
the real CIFAR-10 pair) and counts, at each epoch, the subnormal entries of the flat
parameter θ, gradient g and momentum buffer. Then, on that aged state, times the optimizer
step alone, in pairs on copies of the same state: subnormals kept; flush-to-zero set on the
main thread only (`torch.set_flush_denormal`); flush-to-zero on every thread
(`handgrad.engine.denormals.flush_denormals`), with 1 and 2 torch threads.

    .venv/bin/python benchmarks/bench_subnormals.py [--epochs 20] [--train-threads 1]
        [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from bench_aged import epoch_batches  # noqa: E402
from common import CIFAR, median, save  # noqa: E402

from handgrad.data import load_dataset  # noqa: E402
from handgrad.engine import optim  # noqa: E402
from handgrad.engine.denormals import count_subnormals, flush_denormals  # noqa: E402

MODES = ("keep", "main thread only", "every thread")


def counts(engine: peers.Manual) -> dict[str, int]:
    buf = engine.opt.state[engine.flat.theta]["momentum_buffer"]
    return {"theta": count_subnormals(engine.flat.theta.detach()),
            "grad": count_subnormals(engine.flat.theta.grad), "momentum": count_subnormals(buf)}


def set_mode(mode: str) -> None:
    flush_denormals(False)
    if mode == "main thread only":
        torch.set_flush_denormal(True)
    elif mode == "every thread":
        flush_denormals(True)


def time_optimizer(engine: peers.Manual, threads: int, pairs: int = 7, steps: int = 10) -> dict:
    """ms per optimizer step from copies of the aged state, modes taking turns."""
    torch.set_num_threads(threads)
    theta, buf = engine.flat.theta.detach(), engine.opt.state[engine.flat.theta]["momentum_buffer"]
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for rep in range(pairs):
        for mode in MODES[rep % 3:] + MODES[:rep % 3]:
            p = torch.nn.Parameter(theta.clone())
            p.grad = engine.flat.theta.grad.clone()
            opt = optim.SGD([p], lr=peers.LR, momentum=peers.MOMENTUM)
            opt.state[p]["momentum_buffer"] = buf.clone()
            set_mode(mode)
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[mode].append((time.perf_counter() - start) / steps * 1e3)
    flush_denormals(False)
    return {m: {"median_ms": median(t), "min_ms": min(t), "max_ms": max(t)}
            for m, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--train-threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=CIFAR)
    args = p.parse_args()
    torch.set_num_threads(args.train_threads)
    data = load_dataset("cifar10", args.data_dir)
    engine = peers.Manual(64, "cpu", data.D, data.num_classes, keep=True)
    flush_denormals(False)
    per_epoch = []
    for epoch in range(1, args.epochs + 1):
        engine.run(epoch_batches(data, 64, epoch, len(data.train), torch.device("cpu")))
        flush_denormals(False)
        per_epoch.append({"epoch": epoch, **counts(engine)})
        print(per_epoch[-1], flush=True)
    timing = {t: time_optimizer(engine, t) for t in (1, 2)}
    for t, modes in timing.items():
        print(f"{t} thread(s): " + ", ".join(f"{m} {v['median_ms']:.2f} ms"
                                             for m, v in modes.items()), flush=True)
    save("subnormals", {"params": engine.flat.theta.numel(), "counts": per_epoch,
                        "optimizer_step": timing})


if __name__ == "__main__":
    main()
