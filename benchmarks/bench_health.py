"""The cost of recording gradient health per layer (run/health.py), as a share of an epoch.

The exercise's network (3072→512→128→32→2, ReLU, cross-entropy, SGD momentum 0.9, batch 64,
float32) on the real two-class CIFAR-10 subset, each engine. Two measures from one run:

- paired: epochs with and without the recorder, who goes first alternating (after a warm-up
  pair); the cost is the median of the pairs' ratios − 1 (noisy on a shared host);
- inside: the recorder's own calls (`before_step`, `after_step`, `end_epoch`) timed within
  the epochs that record, as a share of those epochs (the precise one).

    .venv/bin/python benchmarks/bench_health.py [--repeats 5] [--data-dir ../shared/data/cifar10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CIFAR, machine, median, save  # noqa: E402

from handgrad.data import load_dataset  # noqa: E402
from handgrad.engine.losses import get_loss  # noqa: E402
from handgrad.run.config import TrainConfig  # noqa: E402
from handgrad.run.health import HealthRecorder, mlp_probe  # noqa: E402
from handgrad.run.train import Observer, build_model, make_step, train_epoch  # noqa: E402


class TimedRecorder(HealthRecorder):
    """The recorder, adding the time spent in its calls to `self.seconds`."""

    seconds = 0.0

    def _timed(self, method, *args, **kwargs):
        start = time.perf_counter()
        out = method(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return out

    def before_step(self, last: bool) -> None:
        self._timed(super().before_step, last)

    def after_step(self) -> None:
        self._timed(super().after_step)

    def end_epoch(self, epoch: int):
        return self._timed(super().end_epoch, epoch)


def measure(data, engine: str, repeats: int) -> dict:
    loss = get_loss("cross_entropy")
    config = TrainConfig(engine=engine, batch_size=64, lr=0.01, momentum=0.9, device="cpu")
    model = build_model(config, data.D, data.num_classes)
    step = make_step(config, model, loss)
    recorder = TimedRecorder(mlp_probe(model))
    ratios, with_s, inside = [], [], []
    for rep in range(repeats + 1):
        times = {}
        for record in ((True, False) if rep % 2 == 0 else (False, True)):
            recorder.seconds = 0.0
            gen = torch.Generator().manual_seed(rep)
            start = time.perf_counter()
            train_epoch(1, step, data, config, loss, gen, Observer(),
                        recorder if record else None)
            if record:
                recorder.end_epoch(1)
            times[record] = time.perf_counter() - start
        if rep:  # the first pair warms up
            ratios.append(times[True] / times[False])
            with_s.append(times[True])
            inside.append(recorder.seconds / times[True])
    return {"engine": engine, "epoch_s": median(with_s), "paired_ratio": median(ratios),
            "inside_share": median(inside)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data-dir", type=Path, default=CIFAR)
    args = p.parse_args()
    data = load_dataset("cifar10", args.data_dir)
    rows = [measure(data, engine, args.repeats) for engine in ("manual", "autograd")]
    print(f"{'engine':<9} {'epoch s':>8} {'with/without':>13} {'recorder share':>15}")
    for r in rows:
        print(f"{r['engine']:<9} {r['epoch_s']:8.2f} {r['paired_ratio']:13.3f} "
              f"{100 * r['inside_share']:14.2f}%")
    print(f"saved {save('health', {'machine': machine(), 'repeats': args.repeats, 'rows': rows})}")


if __name__ == "__main__":
    main()
