"""Sweep scaling: the exercise's four-config sweep with `--workers 2` against `--workers 1`.

Real CIFAR-10 subset, the exercise's network, `--epochs` epochs, batch 64; each run a fresh
sweep directory; alternating, `--repeats` times; wall time of the whole `handgrad sweep`
command; medians compared. With N workers each process gets cores // N torch threads.

    .venv/bin/python benchmarks/bench_sweep.py [--repeats 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CIFAR, handgrad_cmd, median, run, save  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for workers in (1, 2):
                out = Path(tmp) / f"sweep-{workers}-{rep}"
                times[workers].append(run(handgrad_cmd(
                    "sweep", "--data-dir", str(CIFAR), "--epochs", str(args.epochs),
                    "--workers", str(workers), "--quiet", "--out", str(out)),
                    stdout=subprocess.DEVNULL))
                print(f"repeat {rep + 1}, --workers {workers}: {times[workers][-1]:.1f}s")
    one, two = median(times[1]), median(times[2])
    print(f"four-config sweep on {os.cpu_count()} cores: --workers 1 {one:.1f}s, --workers 2 "
          f"{two:.1f}s: {one / two:.2f}x (target >= 1.3x)")
    save("sweep_scaling", {"epochs": args.epochs, "cores": os.cpu_count(),
                           "workers1_s": times[1], "workers2_s": times[2],
                           "speedup": one / two})


if __name__ == "__main__":
    main()
