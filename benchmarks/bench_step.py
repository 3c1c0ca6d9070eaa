"""Training step: the hand-written engine against autograd, and against the matmul floor.

The exercise's network (3072→512→128→32→2, ReLU, cross-entropy on one-hot targets, SGD with
momentum 0.9), float32, the real two-class CIFAR-10 subset in memory (9,000 training images),
batch 64 and 256. Each repeat is a pair: one epoch of each engine in this process, who goes
first alternating; the speedup is the median of the pairs' ratios, the epoch times are
medians. The floor is 6 · MACs · N / (GFLOP/s of torch.matmul at the first layer's shapes,
the median of measurements taken before each pair): forward (2) and backward (4) FLOPs per
MAC.

    .venv/bin/python benchmarks/bench_step.py [--repeats 11] [--device cpu|cuda]
        [--layout auto|linear|transposed] [--data-dir ../shared/data/cifar10]

--layout picks how the manual engine stores its weights in the flat buffer (see
handgrad/flat.py): `auto` is what training uses (transposed on a multi-threaded CPU,
nn.Linear's layout otherwise); the other two force one, to measure the choice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CIFAR, OUT, median, save  # noqa: E402

from handgrad.data import load_dataset  # noqa: E402
from handgrad.engine.losses import get_loss  # noqa: E402
from handgrad.run.config import TrainConfig  # noqa: E402
from handgrad.run.train import Observer, build_model, make_step, train_epoch  # noqa: E402

SIZES = [3072, 512, 128, 32, 2]
TARGETS = {64: 1.15, 256: 1.0}
LAYOUTS = {"auto": None, "linear": False, "transposed": True}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(batch: int, device: torch.device, reps: int = 50) -> float:
    a = torch.randn(batch, SIZES[0], device=device)
    b = torch.randn(SIZES[0], SIZES[1], device=device)
    times = []
    for _ in range(5):
        torch.matmul(a, b)
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * batch * SIZES[0] * SIZES[1] / median(times) / 1e9


def epoch_times(data, batch: int, device: torch.device, repeats: int,
                transposed: bool | None) -> tuple[dict[str, list[float]], list[float]]:
    """Per engine, the seconds of `repeats` epochs, run as pairs (one epoch of each engine,
    who goes first alternating, after a warm-up pair), and the matmul GFLOP/s measured
    before each pair: the host's slow and fast periods then hit both sides of a pair."""
    loss = get_loss("cross_entropy")
    engines = {}
    for engine in ("manual", "autograd"):
        config = TrainConfig(engine=engine, batch_size=batch, lr=0.01, momentum=0.9,
                             device=device.type)
        model = build_model(config, data.D, data.num_classes)
        engines[engine] = (config, make_step(config, model, loss, transposed))
    times: dict[str, list[float]] = {e: [] for e in engines}
    gflops = []
    for rep in range(repeats + 1):  # the first pair warms up
        gflops.append(matmul_gflops(batch, device))
        order = list(engines) if rep % 2 == 0 else list(reversed(engines))
        for engine in order:
            config, step = engines[engine]
            gen = torch.Generator().manual_seed(rep)
            sync(device)
            start = time.perf_counter()
            train_epoch(1, step, data, config, loss, gen, Observer())
            sync(device)
            if rep:
                times[engine].append(time.perf_counter() - start)
    return times, gflops[1:]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--layout", default="auto", choices=tuple(LAYOUTS))
    p.add_argument("--data-dir", type=Path, default=CIFAR,
                   help="the CIFAR-10 folder holding cifar-10-batches-py")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: --device cuda but CUDA is not available on this machine")
        if not (OUT / "step_cuda.json").exists():  # keep a GPU machine's measurements
            save("step_cuda", {"skipped": "CUDA not available"})
        return
    device = torch.device(args.device)
    data = load_dataset("cifar10", args.data_dir).to(device)
    n = len(data.train)
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
    rows = []
    for batch in (64, 256):
        times, gflops_runs = epoch_times(data, batch, device, args.repeats,
                                         LAYOUTS[args.layout])
        gflops = median(gflops_runs)
        floor = 6 * macs * n / (gflops * 1e9)
        manual, autograd = median(times["manual"]), median(times["autograd"])
        pairs = [a / m for m, a in zip(times["manual"], times["autograd"], strict=True)]
        row = {"batch": batch, "manual_s": manual, "autograd_s": autograd,
               "pair_speedups": pairs, "speedup": median(pairs),
               "target_speedup": TARGETS[batch], "matmul_gflops": gflops, "floor_s": floor,
               "manual_over_floor": manual / floor, "autograd_over_floor": autograd / floor}
        rows.append(row)
        print(f"batch {batch}: epoch manual {manual:.3f}s, autograd {autograd:.3f}s, "
              f"autograd/manual = {row['speedup']:.3f} (median of {len(pairs)} pairs, "
              f"{min(pairs):.2f} … {max(pairs):.2f}; target >= {TARGETS[batch]}); "
              f"matmul {gflops:.0f} GFLOP/s, floor {floor:.3f}s, manual/floor "
              f"{row['manual_over_floor']:.2f}" + (" (target <= 1.3)" if batch == 256 else ""))
    name = f"step_{args.device}" + ("" if args.layout == "auto" else f"_{args.layout}")
    save(name, {"device": args.device, "layout": args.layout, "train_images": n, "macs": macs,
                "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
