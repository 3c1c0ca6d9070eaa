"""Progress hooks of sweeps and `reproduce`: the library calls them, a caller draws them
(`handgrad.report.progress` has bars for a terminal or a notebook and lines for a log).
The library itself never prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigDone:
    """One sweep config finished (here or in a worker process): its place in the sweep,
    its swept values and its validation metrics."""

    done: int                 # configs finished so far, this one included
    total: int                # configs in the sweep
    values: dict[str, Any]    # the swept settings, e.g. {"lr": 0.01, "momentum": 0.9}
    status: str               # "completed" or "diverged"
    val_loss: float | None
    val_accuracy: float | None
    seconds: float | None     # training time of this config


class Progress:
    """What a long computation reports; every hook does nothing unless overridden.

    `reproduce` numbers its phases as report.md numbers its sections (1. gradient check,
    2. engines, 3. sweep, 4. test), and calls `phase_done` in the order they finish."""

    def sweep_start(self, total: int, done: int) -> None:
        """A sweep of `total` configs starts (or resumes with `done` of them finished)."""

    def config_done(self, event: ConfigDone) -> None:
        """A config finished. May be called from a background thread."""

    def phase_done(self, number: int, title: str, detail: str, seconds: float | None) -> None:
        """A phase of `reproduce` finished, e.g. (1, "gradient check", "pass", 0.4);
        seconds: its duration, None where it overlapped others'."""
