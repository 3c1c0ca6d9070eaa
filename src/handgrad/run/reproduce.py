"""`reproduce`: the whole classic exercise in one call, numbered as its report.md is.

1. the hand-written gradients checked against autograd and finite differences;
2. autograd + torch.optim.SGD and manual + handgrad.engine.optim.SGD trained from one start
   (the manual run is the sweep's run of the same config), in float32, and the first steps
   of both again in float64;
3. the sweep (the exercise's four configs by default), selected on validation;
4. the selected model evaluated once on the test set.

DIR/results.json is written and a `ReproduceResult` returned; report.md and its figures are
drawn from it by `handgrad.report.markdown.write_report` (the API and the CLI call it).

With several sweep workers, 1 and the autograd side of 2 run in this process while the
workers train, so that both cores are busy from the start to the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgrad.check.gradcheck import GradcheckReport, gradcheck
from handgrad.data import Dataset
from handgrad.run.compare import Comparison, compare_engines
from handgrad.run.config import load_data
from handgrad.run.metrics import one_hot
from handgrad.run.progress import PhaseDone, Progress
from handgrad.run.rundir import command_line, load_result, write_json
from handgrad.run.sweep.coordinator import sweeping, torch_threads
from handgrad.run.sweep.spec import SweepSpec
from handgrad.run.train import build_model, train

COMPARE_SETTINGS = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
EXACT_STEPS = 10  # the float64 comparison of the engines: this many steps from one start
PHASES = 6  # phase_done calls of one reproduce (a progress bar counts them beside the configs)


@dataclass
class ReproduceResult:
    """Everything `reproduce` found: 1. `gradcheck`, 2. the engines from one start
    (`comparison` in the sweep's dtype, `exact` in float64), 3. the sweep and 4. its selected
    config on the test set (both in `results`, results.json's content)."""

    out: Path
    results: dict[str, Any]
    gradcheck: GradcheckReport
    comparison: Comparison
    exact: Comparison
    figures: dict[str, str] = field(default_factory=dict)  # name: path relative to `out`

    @property
    def passed(self) -> bool:
        """The gradient check passed: the exercise's verdict on the hand-written gradients."""
        return self.gradcheck.passed

    @property
    def selected(self) -> dict[str, Any] | None:
        return self.results["selected"]

    @property
    def report_path(self) -> Path:
        return self.out / "report.md"


def check_gradients(spec: SweepSpec, dataset: Dataset, batch: int = 8) -> GradcheckReport:
    """gradcheck of the sweep's network in float64 on a real batch of training images."""
    config = spec.base.replace(dtype="float64", device="cpu")
    model = build_model(config, dataset.D, dataset.num_classes, dataset.image_shape)
    x = dataset.inputs(dataset.train.x[:batch], torch.float64)
    y = one_hot(dataset.train.y[:batch], dataset.num_classes, torch.float64)
    return gradcheck(model, x, y, config.loss, seed=config.seed)


def reproduce(spec: SweepSpec, out: str | Path, workers: int = min(2, os.cpu_count() or 1),
              storage: str | None = None, select_by: str = "val_loss",
              progress: Progress | None = None) -> ReproduceResult:
    """Run the exercise (the module's docstring) in `out`, write results.json there, and
    return what it found. `progress` hears of every phase and config."""
    progress = progress or Progress()
    base, out = spec.base, Path(out)
    dataset = load_data(base)
    compare_config = base.replace(optimizer="sgd", engine="manual", **COMPARE_SETTINGS)
    # While the sweep's worker processes train, this process does the rest of the exercise
    # with as many threads as each of them.
    with sweeping(out / "sweep", spec, workers=workers, storage=storage, select_by=select_by,
                  dataset=dataset, progress=progress) as summary, torch_threads(1):
        with _phase(progress, 1, "gradcheck") as facts:
            report = facts["report"] = check_gradients(spec, dataset)
        with _phase(progress, 2, "autograd") as facts:
            autograd_run = facts["run"] = train(
                compare_config.replace(engine="autograd"), dataset,
                out / "compare" / "autograd", evaluate_test=False, command=spec.command)
        with _phase(progress, 2, "float64", steps=EXACT_STEPS) as facts:
            exact = facts["comparison"] = compare_engines(
                compare_config.replace(dtype="float64", epochs=1),
                dataset.first(EXACT_STEPS * base.batch_size))
    for number, kind in ((3, "sweep"), (4, "test")):
        progress.phase_done(PhaseDone(number, kind, {"summary": summary}, None))
    with _phase(progress, 2, "engines") as facts:
        comparison = facts["comparison"] = compare_engines(
            compare_config, dataset, out / "compare", done=[*_sweep_runs(summary), autograd_run])
    result = ReproduceResult(out, _results(spec, dataset, report, comparison, exact, summary),
                             report, comparison, exact)
    write_json(out / "results.json", result.results)
    return result


def _results(spec: SweepSpec, dataset: Dataset, report: GradcheckReport,
             comparison: Comparison, exact: Comparison, summary: dict[str, Any],
             ) -> dict[str, Any]:
    """results.json's content."""
    return {"command": spec.command or command_line(), "dataset": spec.base.dataset,
            "class_names": list(dataset.class_names), "gradcheck": _gradcheck_json(report),
            "engines": {"dtype": spec.base.dtype, "settings": COMPARE_SETTINGS,
                        "max_gap": comparison.max_gap(), "epochs": comparison.gaps(),
                        "float64_steps": EXACT_STEPS,
                        "float64_max_loss_gap": exact.max_gap(),
                        "float64_max_weight_gap": exact.max_weight_gap()},
            **summary}


@contextmanager
def _phase(progress: Progress, number: int, kind: str, **facts: Any,
           ) -> Iterator[dict[str, Any]]:
    """Time the block, then tell `progress` it is done, with the facts the block found."""
    start = time.perf_counter()
    yield facts
    progress.phase_done(PhaseDone(number, kind, facts, time.perf_counter() - start))


def _sweep_runs(summary: dict[str, Any]) -> list:
    """The sweep's completed runs, for the comparison to reuse one that is identical."""
    return [load_result(r["run_dir"]) for r in summary["configs"]
            if r["status"] == "completed"]


def _gradcheck_json(report: GradcheckReport) -> dict[str, Any]:
    return {"passed": report.passed, "dtype": report.dtype, "warnings": report.warnings,
            "tensors": [{"name": t.name, "autograd_error": t.autograd_error,
                         "numeric_error": t.numeric_error, "entries": t.entries_checked,
                         "kinks_skipped": t.kinks_skipped, "passed": t.passed}
                        for t in report.tensors]}
