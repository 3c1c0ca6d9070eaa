"""Grid sweeps on Optuna: resumable, shared by worker processes and machines, one run
directory a config, selection on validation and one evaluation on the test set.

    spec.py         what a sweep is: its configs, keys, metrics and settings (no Optuna)
    study.py        the Optuna study: every config enqueued once, recovered when a worker dies
    folder.py       the sweep folder: sweep.json, sweep.lock, run directories, results
    coordinator.py  `sweeping` and `run_sweep`: validate, resume, run the workers, collect

A diverged config (NaN/inf) is a COMPLETE trial with value +inf and status "diverged": never
selected, it never stops the sweep. A sweep opens in `optuna-dashboard DIR/study.journal`
(or the database URL). The names below are imported on first use: `SweepSpec` loads no Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "sweeping": "coordinator", "run_sweep": "coordinator", "start_method": "coordinator",
    "torch_threads": "coordinator", "SweepSpec": "spec", "SweepError": "spec",
    "ConfigFailed": "spec", "METRICS": "spec", "SELECT_BY": "spec", "config_key": "spec",
    "fingerprint": "spec", "mask_url": "spec", "JOURNAL": "study", "open_storage": "study",
    "study_name": "study",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
