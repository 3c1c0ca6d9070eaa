"""The whole exercise end to end: `handgrad reproduce` against the usual exercise code.

Both run as subprocesses on the real CIFAR-10 subset, 5 epochs, batch 64, the exercise's
network and four configs; `--repeats` pairs, who goes first alternating; wall time including
start-up and data loading; the speedup is the median of the pairs' ratios. The baseline is
`baseline_exercise.py`: a DataLoader over a TensorDataset, list-comprehension one-hot labels
every batch, a print every batch, configs one after another, plus the gradient check and
plots that reproduce also makes. Its output goes to a file, as it would when logged.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 3] [--epochs 5] [--workers 2]
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
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    times: dict[str, list[float]] = {"handgrad": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "handgrad": lambda rep: handgrad_cmd(
                "reproduce", "--data-dir", str(CIFAR), "--epochs", str(args.epochs),
                "--batch-size", "64", "--workers", str(args.workers), "--quiet",
                "--out", str(Path(tmp) / f"reproduce-{rep}")),
            "baseline": lambda rep: [sys.executable, str(BASELINE), str(CIFAR),
                                     str(args.epochs), tmp],
        }
        for rep in range(args.repeats):
            order = ["handgrad", "baseline"] if rep % 2 == 0 else ["baseline", "handgrad"]
            for name in order:  # alternating who goes first, so that drift hits both
                with open(Path(tmp) / f"{name}.log", "w") as log:
                    times[name].append(run(commands[name](rep), stdout=log))
            print(f"repeat {rep + 1}: handgrad {times['handgrad'][-1]:.1f}s, "
                  f"baseline {times['baseline'][-1]:.1f}s: "
                  f"{times['baseline'][-1] / times['handgrad'][-1]:.2f}x", flush=True)
    ratios = [b / h for h, b in zip(times["handgrad"], times["baseline"], strict=True)]
    h, b = median(times["handgrad"]), median(times["baseline"])
    print(f"end to end, {args.epochs} epochs, batch 64, 4 configs: handgrad reproduce {h:.1f}s "
          f"(--workers {args.workers}), usual exercise code {b:.1f}s; speedup, median of the "
          f"{len(ratios)} pairs: {median(ratios):.2f}x ({min(ratios):.2f} … {max(ratios):.2f}; "
          "target >= 2x)")
    save(f"pipeline_workers{args.workers}", {"epochs": args.epochs, "workers": args.workers,
                                             "handgrad_s": times["handgrad"],
                                             "baseline_s": times["baseline"],
                                             "ratios": ratios, "speedup": median(ratios)})


if __name__ == "__main__":
    main()
