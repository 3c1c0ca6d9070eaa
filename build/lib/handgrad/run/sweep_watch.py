"""Progress of a sweep whose configs train in worker processes: a thread of the coordinator
polls the study and reports every config that finished (`Progress.config_done`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from handgrad.run.progress import ConfigDone, Progress
from handgrad.run.sweep_spec import SweepSpec, config_key
from handgrad.run.sweep_study import done

POLL_SECONDS = 0.5


class SweepWatcher:
    """`start()` reports the configs already done, then polls in a daemon thread until
    `stop()`, which polls once more so that nothing finished goes unreported."""

    def __init__(self, sweep_dir: Path, spec: SweepSpec, study: optuna.Study,
                 progress: Progress | None) -> None:
        self.sweep_dir, self.study, self.progress = Path(sweep_dir), study, progress
        self.values = {config_key(v): v for v in spec.configs()}  # in the sweep's order
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.progress is None:
            return
        self.seen = set(self._finished())
        self.progress.sweep_start(len(self.values), len(self.seen))
        self._thread = threading.Thread(target=self._loop, name="handgrad-sweep-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        for key, trial in self._finished().items():
            if key not in self.seen:
                self.seen.add(key)
                self.progress.config_done(self._event(key, trial))

    def _finished(self) -> dict[str, FrozenTrial]:
        out = {}
        for key, t in done(self.study).items():  # results found broken are left out
            if key in self.values and "run_dir" in t.user_attrs:
                out[key] = t
        return out

    def _event(self, key: str, trial: FrozenTrial) -> ConfigDone:
        """The trial's metrics: from its user attributes where the worker recorded them,
        else from its run directory's results.json."""
        results = dict(trial.user_attrs)
        if "val_loss" not in results:
            results = _read(self.sweep_dir / trial.user_attrs["run_dir"] / "results.json")
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        return ConfigDone(len(self.seen), len(self.values), dict(self.values[key]),
                          trial.user_attrs.get("status", results.get("status", "?")),
                          results.get("val_loss"), results.get("val_accuracy"), seconds)


def _read(path: Path) -> dict:
    """A run's results.json, or {} while it cannot be read (never fails the sweep)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
