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

from handgrad.report.tables import config_label, fmt, selection_text
from handgrad.run.progress import ConfigDone, PhaseDone, Progress
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


def phase_line(e: PhaseDone) -> str:
    """'1. gradient check: pass, 8 tensors in float64 (0.7 s)': a phase of `reproduce`."""
    title, detail = _PHASE_WORDS[e.kind](**e.facts)
    took = "" if e.seconds is None else f" ({e.seconds:.1f} s)"
    return f"{e.number}. {title}: {detail}{took}"


def _gradcheck_words(report) -> tuple[str, str]:
    bad = report.first_failure()
    verdict = "pass" if bad is None else f"FAIL (first wrong tensor {bad.name})"
    return "gradient check", f"{verdict}, {len(report.tensors)} tensors in {report.dtype}"


def _sweep_words(summary) -> tuple[str, str]:
    sel = summary["selected"]
    if sel is None:
        return "sweep", "no config completed: nothing selected"
    return "sweep", (f"selected {config_label(sel, summary['swept'])} "
                     f"{selection_text(sel, summary['select_by'])}")


def _test_words(summary) -> tuple[str, str]:
    sel = summary["selected"]
    if sel is None:
        return "test set", "not used: nothing selected"
    return ("selected config on the test set",
            f"loss {fmt(sel['test_loss'])}, accuracy {fmt(sel['test_accuracy'])}")


_PHASE_WORDS = {  # PhaseDone.kind: its facts -> (title, detail)
    "gradcheck": _gradcheck_words,
    "autograd": lambda run: ("autograd + torch.optim trained",
                             f"{len(run.history)} epochs, {run.status}"),
    "float64": lambda comparison, steps: (
        f"both engines in float64, {steps} steps",
        f"largest loss gap {fmt(comparison.max_gap())}, weight difference "
        f"{fmt(comparison.max_weight_gap())}"),
    "sweep": _sweep_words,
    "test": _test_words,
    "engines": lambda comparison: (
        "engines compared, one start",
        f"largest gap ({comparison.manual.config.dtype}) {fmt(comparison.max_gap())}"),
}


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

    def phase_done(self, event: PhaseDone) -> None:
        with self._lock:
            self._advance(1, phase_line(event))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
