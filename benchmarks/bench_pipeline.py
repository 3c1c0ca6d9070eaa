"""The whole exercise end to end: `handgrad reproduce` against the usual exercise code.

Both run as subprocesses on the real CIFAR-10 subset, 5 epochs, batch 64, the exercise's
network and four configs; alternating, `--repeats` times each; wall time including start-up
and data loading; medians compared. The baseline is `baseline_exercise.py` (a DataLoader over
a TensorDataset, list-comprehension one-hot labels every batch, a print every batch, configs
one after another). Its output goes to a file, as it would when logged.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 2] [--epochs 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CIFAR, handgrad_cmd, median, run, save  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "baseline_exercise.py"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    times: dict[str, list[float]] = {"handgrad": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            out = Path(tmp) / f"reproduce-{rep}"
            with open(Path(tmp) / "h.log", "w") as log:
                times["handgrad"].append(run(handgrad_cmd(
                    "reproduce", "--data-dir", str(CIFAR), "--epochs", str(args.epochs),
                    "--batch-size", "64", "--workers", str(args.workers), "--quiet",
                    "--out", str(out)), stdout=log))
            with open(Path(tmp) / "b.log", "w") as log:
                times["baseline"].append(run(
                    [sys.executable, str(BASELINE), str(CIFAR), str(args.epochs), tmp], stdout=log))
            print(f"repeat {rep + 1}: handgrad {times['handgrad'][-1]:.1f}s, "
                  f"baseline {times['baseline'][-1]:.1f}s")
    h, b = median(times["handgrad"]), median(times["baseline"])
    print(f"end to end, {args.epochs} epochs, batch 64, 4 configs: handgrad reproduce {h:.1f}s "
          f"(--workers {args.workers}), usual exercise code {b:.1f}s: {b / h:.2f}x "
          "(target >= 2x)")
    save(f"pipeline_workers{args.workers}", {"epochs": args.epochs, "workers": args.workers,
                                             "handgrad_s": times["handgrad"],
                                             "baseline_s": times["baseline"],
                                             "speedup": b / h})


if __name__ == "__main__":
    main()
