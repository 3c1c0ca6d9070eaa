"""Whole runs from Python: `train`, `compare`, `sweep`, `reproduce`, `load_run`.

Each takes a config object or plain keyword arguments (the fields of `TrainConfig`), checks
them all before anything is written, and returns a result object that prints as a short
summary. The same work as the `handgrad` subcommands of the same names, without printing.

    >>> import handgrad
    >>> run = handgrad.train(dataset="digits", hidden=[16], epochs=2)
    >>> sweep = handgrad.sweep(dataset="digits", hidden=[16], epochs=2, lr=[0.01, 0.1],
    ...                        out="runs/my-sweep")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handgrad.grade.batch import grade as grade_submissions  # noqa: F401  (public API)
from handgrad.run.config import TrainConfig

if TYPE_CHECKING:  # imported where used: it loads Optuna, which train() does not need
    from handgrad.run.sweep_spec import SweepSpec

GRID_KEYS = ("lr", "weight_decay", "momentum", "optimizer", "batch_size", "hidden")


def config_from(config: TrainConfig | None = None, **settings: Any) -> TrainConfig:
    """`config` (default: `TrainConfig()`) with `settings` replacing its fields, validated.
    Lists are accepted where the config holds tuples (hidden, betas, classes)."""
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"expected a TrainConfig, got {type(config).__name__}")
    fields = TrainConfig.__dataclass_fields__
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}; settings: {', '.join(fields)}")
    for key in ("hidden", "betas", "classes"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    return (config or TrainConfig()).replace(**settings).validate()


def train(config: TrainConfig | None = None, *, out: str | Path | None = None,
          observer=None, progress: bool = False, test: bool = False, **settings: Any):
    """Train one model; write its run directory to `out` when given. -> `RunResult`

    `config` and/or `TrainConfig` fields as keywords: `train(dataset="digits", lr=0.1)`.
    Train and validation metrics only, unless `test` (keep the test set for the end, like
    `handgrad train --test`). `progress`: a bar and a line per epoch (`tqdm.auto`).
    With `out`, also its report.html.
    """
    from handgrad.report.summaries import printed
    from handgrad.run.train import train as train_run

    result = train_run(config_from(config, **settings), out_dir=out,
                       observer=observer or _epoch_progress(progress), evaluate_test=test)
    if out is not None:
        from handgrad.report.html import write_run

        write_run(result, out)
    return printed(result)


def compare(config: TrainConfig | None = None, *, out: str | Path | None = None,
            observer=None, **settings: Any):
    """Train the manual and the autograd engine from one start. -> `Comparison`"""
    from handgrad.report.summaries import printed
    from handgrad.run.compare import compare_engines

    if "engine" in settings:
        raise TypeError("compare trains both engines; it takes no engine setting")
    return printed(compare_engines(config_from(config, **settings), out_dir=out,
                                   observer=observer))


def _epoch_progress(progress: bool):
    if not progress:
        return None
    from handgrad.report.progress_bars import EpochProgress

    return EpochProgress()


def _run_progress(progress, **kw):
    """`progress` itself (a `handgrad.run.progress.Progress`), a bar and lines for True."""
    if progress is True:
        from handgrad.report.progress_bars import RunProgress

        return RunProgress(**kw)
    return progress or None


def sweep_spec(spec: SweepSpec | TrainConfig | None = None, **settings: Any) -> SweepSpec:
    """The validated sweep: `spec` itself, or the grid of the list-valued keywords over a
    base config (`spec` as a TrainConfig, and/or the other keywords).

    `lr`, `weight_decay`, `momentum`, `optimizer`, `batch_size` take a value or a list;
    `hidden` one network (`[16, 8]`) or a list of them (`[[16, 8], [32]]`). Without `lr`,
    `weight_decay` and `momentum`: the classic exercise's four (lr, weight decay, momentum).
    """
    from handgrad.run.sweep_spec import SweepSpec

    grid = {k: settings.pop(k) for k in GRID_KEYS if k in settings}
    if isinstance(spec, SweepSpec):
        if grid or settings:
            raise TypeError("give a SweepSpec or settings, not both")
        return spec.validate()
    base = config_from(spec, **settings)
    lists = {k: _as_list(v) for k, v in grid.items() if k != "hidden"}
    for key, values in lists.items():
        bad = [v for v in values if isinstance(v, bool)]
        if bad:
            raise ValueError(f"{key} must be numbers or names, got {bad[0]!r}")
    if "hidden" in grid:
        lists["hidden"] = _networks(grid["hidden"])
    return SweepSpec.from_grid(base, **lists)


def sweep(spec: SweepSpec | TrainConfig | None = None, *, out: str | Path, workers: int = 1,
          storage: str | None = None, select_by: str = "val_loss", progress=False,
          **settings: Any):
    """Run (or resume) a grid sweep in `out`: every config trained, the best on validation
    selected and evaluated once on the test set. -> `SweepSummary` (results.json's content)

    `handgrad.sweep(dataset="digits", lr=[0.01, 0.1], epochs=2, out="runs/s")`; the grid
    keywords are those of `sweep_spec`. `progress=True`: one bar and a line per finished
    config (`tqdm.auto`: a widget in Jupyter). report.html is written in `out` too.
    """
    from handgrad.report.summaries import printed
    from handgrad.run.sweep import run_sweep

    spec = sweep_spec(spec, **settings)
    shown = _run_progress(progress)
    try:
        summary = run_sweep(Path(out), spec, workers=workers, storage=storage,
                            select_by=select_by, progress=shown)
    finally:
        if hasattr(shown, "close"):
            shown.close()
    from handgrad.report.html import write_sweep

    write_sweep(summary, out)
    return printed(summary)


def reproduce(spec: SweepSpec | TrainConfig | None = None, *, out: str | Path,
              workers: int = 1, storage: str | None = None, select_by: str = "val_loss",
              progress=False, **settings: Any):
    """The whole classic exercise in `out` (gradient check, both engines from one start,
    the sweep, selection, test, report.md). -> `ReproduceResult`

    `progress=True`: one bar, and a line per phase and per config, numbered as report.md."""
    from handgrad.report.markdown import PrintedReproduce, write_report
    from handgrad.run.reproduce import PHASES
    from handgrad.run.reproduce import reproduce as reproduce_run

    spec = sweep_spec(spec, **settings)
    shown = _run_progress(progress, phases=PHASES, sweep_prefix="3. sweep ")
    try:
        result = reproduce_run(spec, Path(out), workers=workers, storage=storage,
                               select_by=select_by, progress=shown)
    finally:
        if hasattr(shown, "close"):
            shown.close()
    write_report(result)
    return PrintedReproduce.of(result)


def load_run(run_dir: str | Path, weights: bool = True):
    """A run directory read back and checked: config, per-epoch history, status, test
    metrics, and (when `weights` and the run completed) `.model` with its saved weights.
    -> `RunResult`"""
    from handgrad.report.summaries import printed
    from handgrad.run.rundir import RunDir

    run = RunDir(run_dir)
    result = run.load_result()
    if weights and result.status == "completed":
        result.model = run.load_model()
    return printed(result)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _networks(hidden: Any) -> list[Sequence[int] | str]:
    """One network ([16, 8] or '16,8') or a list of networks, as a list of networks."""
    if isinstance(hidden, str) or (isinstance(hidden, (list, tuple))
                                   and all(isinstance(h, int) for h in hidden)):
        networks = [hidden]
    elif isinstance(hidden, (list, tuple)):
        networks = list(hidden)
    else:
        raise ValueError(f"hidden must be widths or a list of networks, got {hidden!r}")
    for net in networks:
        ok = isinstance(net, str) or (isinstance(net, (list, tuple)) and all(
            isinstance(h, int) and not isinstance(h, bool) for h in net))
        if not ok:
            raise ValueError(f"hidden {net!r} is not a list of integer widths like [16, 8]")
    return networks
