"""Training step of the hand-written conv net against autograd on the same layers and against
eager torch.nn.

`handgrad train --model cnn`'s network on CIFAR-10's shapes (3×32×32 images, conv-ReLU-pool
twice with 8 and 16 filters, the 512-128-32 head, 2 classes), float32, SGD momentum 0.9:

- manual:   the training step of `handgrad train --model cnn` (each layer's hand-written
  backward, handgrad.optim.SGD);
- autograd: `--engine autograd`, loss.backward() through the same hand-written forward,
  torch.optim.SGD;
- torch.nn: the same network as torch.nn modules (`Sequential.to_torch()`: nn.Conv2d,
  nn.MaxPool2d, ...), eager, F.cross_entropy, torch.optim.SGD.

After `--warmup` steps of each (oneDNN builds its kernels over the first calls), each
repeat times `--steps` steps of every contender on the same random batches (who goes first
rotating); a ratio is contender / manual within one repeat (above 1: manual is faster),
reported as the median (and range) over the repeats, with the host's load average before
and after (the numbers of a shared host move with it).

    .venv/bin/python benchmarks/bench_conv.py [--batch 64] [--steps 5] [--repeats 15]
        [--warmup 30] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, save  # noqa: E402

from handgrad.engine.losses import get_loss  # noqa: E402
from handgrad.run.config import TrainConfig  # noqa: E402
from handgrad.run.train import build_model, make_step  # noqa: E402

IMAGE = (3, 32, 32)


def contenders(batch: int, device: str) -> dict:
    """name -> step(x, t): each on its own copy of the same initial weights."""
    loss = get_loss("cross_entropy")
    steps = {}
    for engine in ("manual", "autograd"):
        config = TrainConfig(model="cnn", engine=engine, batch_size=batch, lr=0.01,
                             momentum=0.9, device=device)
        model = build_model(config, 3 * 32 * 32, 2, IMAGE)
        steps[engine] = make_step(config, model, loss)
    # torch.nn: the autograd step (F.cross_entropy, torch.optim.SGD) on torch.nn modules
    steps["torch.nn"] = make_step(config, model.to_torch(), loss)
    return steps


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(batch: int, steps: int, repeats: int, warmup: int, device: str) -> dict:
    fns = contenders(batch, device)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.rand(batch, 3 * 32 * 32, generator=gen).to(device) for _ in range(steps)]
    ts = [F.one_hot(torch.randint(0, 2, (batch,), generator=gen), 2).float().to(device)
          for _ in range(steps)]
    names = list(fns)
    for name in names:
        for i in range(warmup):
            fns[name](xs[i % steps], ts[i % steps])
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repeats):
        order = names[rep % 3:] + names[:rep % 3]
        for name in order:
            sync(device)
            start = time.perf_counter()
            for x, t in zip(xs, ts, strict=True):
                fns[name](x, t)
            sync(device)
            times[name].append((time.perf_counter() - start) / steps)
    ratios = {n: [a / m for a, m in zip(times[n], times["manual"], strict=True)]
              for n in names if n != "manual"}
    return {"batch": batch, "steps": steps, "repeats": repeats, "device": device,
            "threads": torch.get_num_threads(), "warmup": warmup,
            "load_average": [load_before, os.getloadavg()[0]],
            "step_ms": {n: 1e3 * median(v) for n, v in times.items()},
            "ratio_over_manual": {n: {"median": median(r), "min": min(r), "max": max(r)}
                                  for n, r in ratios.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        save("conv_cuda", {"skipped": "no CUDA device"})
        print("skipped: no CUDA device")
        return
    result = measure(args.batch, args.steps, args.repeats, args.warmup, args.device)
    path = save(f"conv_{args.device}_threads{result['threads']}", result)
    load = result["load_average"]
    print(f"batch {args.batch}, {args.device}, {result['threads']} thread(s), {args.repeats} "
          f"repeats of {args.steps} steps; load average {load[0]:.1f} -> {load[1]:.1f}")
    for name, ms in result["step_ms"].items():
        r = result["ratio_over_manual"].get(name)
        ratio = (f"  {name}/manual {r['median']:.2f} ({r['min']:.2f}…{r['max']:.2f})"
                 if r else "")
        print(f"{name:>9}: {ms:8.2f} ms/step{ratio}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
