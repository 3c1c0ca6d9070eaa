"""Progress drawn for people: `tqdm.auto` bars (a widget in Jupyter, text on a terminal) and
plain lines when the output goes to a file.

- `EpochProgress`: training, a bar per epoch (interactive only) and a line per epoch.
- `RunProgress`: sweeps and `reproduce`, one overall bar (interactive only) and a line per
  finished config or phase, e.g.
  `[2/4] lr=0.01 momentum=0.9 weight_decay=0: val loss 0.412, acc 0.83, 9.8 s`.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

import torch
from tqdm.auto import tqdm

from handgrad.report.tables import config_label, fmt
from handgrad.run.progress import ConfigDone, Progress
from handgrad.run.train import EpochMetrics, Observer


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws widgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def interactive(stream: TextIO | None = None) -> bool:
    """A person watches: a notebook, or `stream` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return in_notebook() or bool(getattr(stream, "isatty", lambda: False)())


def print_line(text: str = "", out: TextIO | None = None) -> None:
    """`text` on `out` (default stdout). Once that is a closed pipe (`handgrad … | head -1`),
    it is pointed at /dev/null: nothing more is shown and the work goes on (its results are
    in the run directory)."""
    stream = sys.stdout if out is None else out
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # later writes and the final flush go nowhere
        os.close(devnull)


_print = print_line


def epoch_line(m: EpochMetrics) -> str:
    return (f"epoch {m.epoch}: train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f} | "
            f"val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f} | {m.seconds:.1f} s")


class EpochProgress(Observer):
    """A bar per epoch with the running mean batch loss (when `bar`, default: interactive)
    and, unless `quiet`, a line per epoch with train and validation metrics."""

    def __init__(self, quiet: bool = False, bar: bool | None = None,
                 out: TextIO | None = None) -> None:
        self.quiet, self.out = quiet, out
        self.enabled = not quiet and (interactive() if bar is None else bar)
        self.bar = None
        self.loss_sum: torch.Tensor | float = 0.0

    def epoch_start(self, epoch: int, steps: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False, file=sys.stderr)
            self.loss_sum = 0.0

    def batch_end(self, step: int, loss: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.loss_sum = self.loss_sum + loss.detach()  # stays on the device
            if step % 10 == 0:  # a host sync, so only every 10 steps and only with a bar
                self.bar.set_postfix(loss=f"{(self.loss_sum / step).item():.4f}")

    def epoch_end(self, m: EpochMetrics) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            _print(epoch_line(m), self.out)


def config_line(e: ConfigDone, prefix: str = "") -> str:
    """'[2/4] lr=0.01 momentum=0.9: val loss 0.412, acc 0.83, 9.8 s'."""
    if e.status == "completed":
        result = f"val loss {fmt(e.val_loss)}, acc {fmt(e.val_accuracy)}"
    else:
        result = e.status
    seconds = "" if e.seconds is None else f", {e.seconds:.1f} s"
    return f"{prefix}[{e.done}/{e.total}] {config_label(e.values)}: {result}{seconds}"


class RunProgress(Progress):
    """One overall bar for a sweep or `reproduce` (when `bar`, default: interactive), and a
    line per finished config and phase unless `quiet`.

    phases: the phases of `reproduce` counted by the bar beside the configs (0 for a sweep);
    sweep_prefix: written before each config line ("3. sweep " in `reproduce`)."""

    def __init__(self, quiet: bool = False, bar: bool | None = None, phases: int = 0,
                 sweep_prefix: str = "", out: TextIO | None = None) -> None:
        self.quiet, self.phases, self.sweep_prefix, self.out = quiet, phases, sweep_prefix, out
        self.enabled = not quiet and (interactive() if bar is None else bar)
        self.bar = None
        self.configs = 0
        self._lock = threading.Lock()  # config_done comes from the sweep's watcher thread

    def sweep_start(self, total: int, done: int) -> None:
        with self._lock:
            self.configs = total
            before = f"{self.sweep_prefix}{done}/{total} configs done before" if done else None
            self._advance(done, before)

    def config_done(self, event: ConfigDone) -> None:
        with self._lock:
            self._advance(1, config_line(event, self.sweep_prefix))

    def phase_done(self, number: int, title: str, detail: str, seconds: float | None) -> None:
        took = "" if seconds is None else f" ({seconds:.1f} s)"
        with self._lock:
            self._advance(1, f"{number}. {title}: {detail}{took}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _advance(self, n: int, line: str | None) -> None:
        if self.quiet:
            return
        if self.enabled:
            if self.bar is None:
                self.bar = tqdm(total=self.configs + self.phases, desc="handgrad",
                                file=sys.stderr, leave=False)
            self.bar.total = self.configs + self.phases
            self.bar.update(n)
        if line is not None:
            self._write(line)

    def _write(self, line: str) -> None:
        if self.bar is None:
            _print(line, self.out)
            return
        try:
            self.bar.write(line, file=sys.stdout if self.out is None else self.out)
        except BrokenPipeError:
            print_line(line, self.out)  # points the closed pipe at /dev/null
