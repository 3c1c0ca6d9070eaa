"""Aged weights and real peers: epochs 1, 10 and 20 of one run, every contender in lockstep.

Every contender (benchmarks/peers.py) trains its own copy of the exercise's network from
the same initial weights on the same batches: epoch by epoch, chunk by chunk (a chunk is a
few dozen batches), the contenders take turns on one chunk, in an order that rotates. At
the marked epochs each chunk is timed, so every chunk is a pair (contender, manual) on the
same batches at the same moment of the run and the same point of training: the ratios are
medians of those pairs, robust to a host whose speed changes from minute to minute.
`fresh` is a manual engine built anew from the initial weights at each mark: manual/fresh
is the aged/fresh ratio (1 at epoch 1, the slowdown later). Batch building is outside the
timings (all share the same tensors); only full batches are used (torch.compile would
recompile for the last, smaller one).

The floor is the time of the products a manual step computes (forward a W_lᵀ, dL/dzᵀ a for
every layer, dL/dz W for layers 2..L) at the GFLOP/s of torch.matmul at the first layer's
shapes, measured before each timed chunk (median).

    .venv/bin/python benchmarks/bench_aged.py [--epochs 20] [--marks 1 10 20]
        [--batches 64 256] [--train-images 9000] [--chunks 6] [--device cpu|cuda]
        [--contenders manual fresh keep eager compile numpy] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import CIFAR, median, save  # noqa: E402

from handgrad.data import load_dataset  # noqa: E402
from handgrad.engine.denormals import flush_denormals  # noqa: E402

SIZES = [3072, 512, 128, 32, 2]
CONTENDERS = ("manual", "fresh", "keep", "eager", "compile", "numpy")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(batch: int, device: torch.device, reps: int = 20) -> float:
    a, b = torch.randn(batch, SIZES[0], device=device), torch.randn(SIZES[0], SIZES[1],
                                                                    device=device)
    torch.matmul(a, b)
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    sync(device)
    return 2 * batch * SIZES[0] * SIZES[1] * reps / (time.perf_counter() - start) / 1e9


def macs_per_sample() -> int:
    """Products a manual step computes: forward and dL/dW for every layer, dL/da below 1."""
    layer = [a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)]
    return 3 * sum(layer) - layer[0]


def epoch_batches(data, batch: int, epoch: int, n: int, device) -> list:
    """The epoch's full batches of the first `n` training images, as float inputs."""
    gen = torch.Generator().manual_seed(epoch)
    order = torch.randperm(n, generator=gen)
    return [(data.inputs(data.train.x[idx]).to(device), data.train.y[idx].to(device))
            for idx in order[: n - n % batch].split(batch)]


def run(args, batch: int, device, data) -> dict:
    """One run at `batch`: manual (and keep) train every epoch; at a marked epoch the peers
    take manual's weights and momentum and every contender is timed chunk by chunk."""
    n = min(args.train_images, len(data.train))
    want = set(args.contenders)
    D, C, dev = data.D, data.num_classes, device.type
    engines = {"manual": peers.Manual(batch, dev, D, C)}
    if "keep" in want:
        engines["keep"] = peers.Manual(batch, dev, D, C, keep=True)
    flush_denormals(True)
    state, first = engines["manual"].state(), epoch_batches(data, batch, 0, n, device)[0]
    syncing = {}
    if "eager" in want:
        syncing["eager"] = peers.TorchPeer(state)
    if "compile" in want:
        syncing["compile"] = peers.TorchPeer(state, compile=True, x0=first[0], y0=first[1])
    if "numpy" in want and dev == "cpu" and batch == 256:  # numpy at batch 256, as asked
        syncing["numpy"] = peers.NumpyMLP(state)
    marks: dict[int, dict] = {}
    for epoch in range(1, args.epochs + 1):
        batches = epoch_batches(data, batch, epoch, n, device)
        if epoch not in args.marks:
            for engine in engines.values():
                engine.run(batches)
            continue
        for peer in syncing.values():
            peer.sync(engines["manual"].state())
        timed = {**engines, **syncing}
        if "fresh" in want:
            timed["fresh"] = peers.Manual(batch, dev, D, C)
        marks[epoch] = time_epoch(timed, batches, args.chunks, batch, device)
        print(report(batch, epoch, marks[epoch]), flush=True)
    compile_s = syncing["compile"].compile_s if "compile" in syncing else None
    return {"batch": batch, "train_images": n, "steps_per_epoch": n // batch,
            "compile_s": compile_s, "marks": marks}


def time_epoch(contenders: dict, batches: list, chunks: int, batch: int, device) -> dict:
    """One epoch of every contender, chunk by chunk, who goes first rotating."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    gflops = []
    for c in range(chunks):
        chunk = batches[c::chunks]
        gflops.append(matmul_gflops(batch, device))
        order = list(contenders)
        for name in order[c % len(order):] + order[:c % len(order)]:
            contender = contenders[name]
            sync(device)
            start = time.perf_counter()
            if hasattr(contender, "run"):
                contender.run(chunk)
            else:
                for x, y in chunk:
                    contender.step(x, y)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return summarize(times, gflops, batch, len(batches))


def summarize(times: dict[str, list[float]], gflops: list[float], batch: int,
              steps: int) -> dict:
    """Epoch seconds per contender, and per contender the pairs' ratios to manual."""
    manual = times["manual"]
    rate = median(gflops)
    floor = 2 * macs_per_sample() * batch * steps / (rate * 1e9)
    out = {"epoch_s": {k: sum(v) for k, v in times.items()}, "matmul_gflops": rate,
           "floor_s": floor, "manual_over_floor": sum(manual) / floor, "ratios": {}}
    for name, ts in times.items():
        if name != "manual":
            pairs = [t / m for t, m in zip(ts, manual, strict=True)]
            out["ratios"][name] = {"median": median(pairs), "min": min(pairs),
                                   "max": max(pairs)}
    return out


def report(batch: int, epoch: int, m: dict) -> str:
    parts = [f"{k} {v['median']:.2f} ({v['min']:.2f}…{v['max']:.2f})"
             for k, v in m["ratios"].items()]
    return (f"batch {batch} epoch {epoch}: manual {m['epoch_s']['manual']:.2f}s, "
            f"floor {m['floor_s']:.2f}s (x{m['manual_over_floor']:.2f}); time / manual: "
            + ", ".join(parts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--marks", type=int, nargs="+", default=[1, 10, 20])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--train-images", type=int, default=9000)
    p.add_argument("--chunks", type=int, default=6)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's own choice)")
    p.add_argument("--data-dir", type=Path, default=CIFAR)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: --device cuda but CUDA is not available on this machine")
        return
    device = torch.device(args.device)
    data = load_dataset("cifar10", args.data_dir)
    rows = [run(args, batch, device, data) for batch in args.batches]
    save(f"aged_{args.device}", {"device": args.device, "epochs": args.epochs,
                                 "chunks": args.chunks, "threads": torch.get_num_threads(),
                                 "rows": rows})


if __name__ == "__main__":
    main()
