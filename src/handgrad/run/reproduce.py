"""`handgrad reproduce`: the whole classic exercise in one command, and its report.

1. the hand-written gradients checked against autograd and finite differences;
2. autograd + torch.optim.SGD and manual + handgrad.engine.optim.SGD trained from one start (the
   manual run is the sweep's run of the same config), in float32, and the first steps of
   both again in float64;
3. the sweep (the exercise's four configs by default), selected on validation;
4. the selected model evaluated once on the test set;
5. DIR/report.md with tables and PNG plots, and DIR/results.json.

With several sweep workers, 1 and the autograd side of 2 run in this process while the
workers train, so that both cores are busy from the start to the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from handgrad.check.gradcheck import GradcheckReport, gradcheck
from handgrad.data import Dataset
from handgrad.report import plots
from handgrad.report.tables import fmt, markdown_table, text_table
from handgrad.run.compare import compare_engines
from handgrad.run.config import load_data
from handgrad.run.metrics import one_hot
from handgrad.run.rundir import (
    atomic_write_bytes,
    command_line,
    load_result,
    read_curves,
    write_json,
)
from handgrad.run.sweep import Sweep
from handgrad.run.sweep_results import table as sweep_table
from handgrad.run.sweep_spec import SweepSpec
from handgrad.run.train import build_model, train

COMPARE_SETTINGS = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
EXACT_STEPS = 10  # the float64 comparison of the engines: this many steps from one start


def check_gradients(spec: SweepSpec, dataset: Dataset, batch: int = 8) -> GradcheckReport:
    """gradcheck of the sweep's network in float64 on a real batch of training images."""
    config = spec.base.replace(dtype="float64", device="cpu")
    model = build_model(config, dataset.D, dataset.num_classes)
    x = dataset.inputs(dataset.train.x[:batch], torch.float64)
    y = one_hot(dataset.train.y[:batch], dataset.num_classes, torch.float64)
    return gradcheck(model, x, y, config.loss, seed=config.seed)


def reproduce(spec: SweepSpec, out: Path, args: argparse.Namespace,
              say: Callable[[str], None]) -> int:
    base = spec.base
    dataset = load_data(base)
    out = Path(out)
    compare_config = base.replace(optimizer="sgd", engine="manual", **COMPARE_SETTINGS)
    # While the sweep's worker processes train, this process does the rest of the exercise
    # with as many threads as each of them.
    sweep = Sweep(out / "sweep", spec, workers=args.workers, storage=args.storage,
                  select_by=args.select_by, dataset=dataset)
    with sweep, torch_threads(sweep.threads):
        report = _gradient_check(spec, dataset, say)
        autograd_run = train(compare_config.replace(engine="autograd"), dataset,
                             out / "compare" / "autograd", evaluate_test=False,
                             command=spec.command)
        exact = compare_engines(compare_config.replace(dtype="float64", epochs=1),
                                dataset.first(EXACT_STEPS * base.batch_size),
                                evaluate_test=False)
        plots.load()
    summary = sweep.summary
    say(f"== 2. sweep of {len(spec.configs())} configs, selected by {args.select_by}")
    headers, rows = sweep_table(summary)
    say(text_table(headers, rows))
    sel = summary["selected"]
    if sel:
        say(f"selected config on test: loss {fmt(sel['test_loss'])}, accuracy "
            f"{fmt(sel['test_accuracy'])}")

    say("== 3. manual + handgrad.engine.optim.SGD vs autograd + torch.optim.SGD, one start")
    comparison = compare_engines(compare_config, dataset, out / "compare", evaluate_test=False,
                                 done=[*_sweep_runs(summary), autograd_run])
    gap_rows = [[g["epoch"], g["manual_val_loss"], g["autograd_val_loss"], g["max_gap"]]
                for g in comparison.gaps()]
    say(text_table(["epoch", "manual val loss", "autograd val loss", "largest gap"], gap_rows))
    say(f"largest gap ({base.dtype}): {fmt(comparison.max_gap())}")
    say(f"float64, the first {EXACT_STEPS} steps from one start: largest loss gap "
        f"{fmt(exact.max_gap())}, largest weight difference {fmt(exact.max_weight_gap())} "
        "(rounding level: float32 runs drift apart from rounding, amplified by training)")

    figures = _figures(out, summary)
    results = {"command": spec.command or command_line(), "dataset": base.dataset,
               "class_names": list(dataset.class_names), "gradcheck": _gradcheck_json(report),
               "engines": {"dtype": base.dtype, "max_gap": comparison.max_gap(),
                           "epochs": comparison.gaps(),
                           "float64_steps": EXACT_STEPS,
                           "float64_max_loss_gap": exact.max_gap(),
                           "float64_max_weight_gap": exact.max_weight_gap()},
               **summary}
    write_json(out / "results.json", results)
    atomic_write_bytes(out / "report.md",
                       render_report(results, report, comparison, figures).encode())
    say(f"report: {out / 'report.md'}")
    return 0 if report.passed else 1


def _gradient_check(spec: SweepSpec, dataset: Dataset,
                    say: Callable[[str], None]) -> GradcheckReport:
    base = spec.base
    sizes = "-".join(map(str, [dataset.D, *base.hidden, dataset.num_classes]))
    say(f"== 1. gradient check ({sizes}, {base.activation}, {base.loss}, float64, "
        "a real batch of 8 images)")
    report = check_gradients(spec, dataset)
    say(text_table(report.HEADERS, report.rows()))
    for w in report.warnings:
        say(f"note: {w}")
    return report


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sweep_runs(summary: dict[str, Any]) -> list:
    """The sweep's completed runs, for the comparison to reuse one that is identical."""
    return [load_result(r["run_dir"]) for r in summary["configs"]
            if r["status"] == "completed"]


def _figures(out: Path, summary: dict[str, Any]) -> dict[str, str]:
    curves = {}
    for row in summary["configs"]:
        label = ", ".join(f"{k}={row[k]}" for k in summary["swept"])
        curves[label] = read_curves(row["run_dir"])
    figures = {"sweep": plots.loss_curves(out / "sweep_curves.png", curves,
                                          "every config: train (solid) and validation (dashed)"),
               "engines": out / "compare" / "engines.png"}  # drawn by compare_engines
    sel = summary["selected"]
    if sel:
        figures["confusion"] = plots.confusion_matrix(
            out / "confusion.png", sel["confusion_matrix"], sel["class_names"],
            "selected config on the test set")
    return {k: Path(v).relative_to(out).as_posix() for k, v in figures.items()}


def _gradcheck_json(report: GradcheckReport) -> dict[str, Any]:
    return {"passed": report.passed, "dtype": report.dtype, "warnings": report.warnings,
            "tensors": [{"name": t.name, "autograd_error": t.autograd_error,
                         "numeric_error": t.numeric_error, "entries": t.entries_checked,
                         "kinks_skipped": t.kinks_skipped, "passed": t.passed}
                        for t in report.tensors]}


def render_report(results: dict[str, Any], report: GradcheckReport, comparison,
                  figures: dict[str, str]) -> str:
    sel = results["selected"]
    headers, rows = sweep_table(results)
    gaps = [[g["epoch"], g["manual_train_loss"], g["autograd_train_loss"], g["manual_val_loss"],
             g["autograd_val_loss"], g["max_gap"]] for g in comparison.gaps()]
    parts = [
        "# handgrad: the classic exercise, reproduced\n",
        f"Dataset: **{results['dataset']}**, classes {', '.join(results['class_names'])}.\n",
        "Reproduce with:\n\n```\n" + " ".join(results["command"]) + "\n```\n",
        "## 1. Gradient check (float64, a real batch)\n",
        f"Pass lines: relative error <= {report.autograd_tolerance:g} against autograd, <= "
        f"{report.numeric_tolerance:g} against central differences (step {report.step:g}). "
        f"Result: **{'pass' if report.passed else 'FAIL'}**.\n",
        markdown_table(report.HEADERS, report.rows()),
        "\n" + "".join(f"- {w}\n" for w in report.warnings),
        "## 2. Hand-written vs autograd training, one start\n",
        f"SGD lr {COMPARE_SETTINGS['lr']}, momentum {COMPARE_SETTINGS['momentum']}, "
        f"{results['engines']['dtype']}; largest gap in loss: "
        f"**{fmt(results['engines']['max_gap'])}**. The same start, the first "
        f"{results['engines']['float64_steps']} steps in float64: largest loss gap "
        f"**{fmt(results['engines']['float64_max_loss_gap'])}**, largest weight difference "
        f"**{fmt(results['engines']['float64_max_weight_gap'])}**. The two "
        "engines compute the same function; in float32 their different summation orders "
        "leave rounding-level differences that training can amplify over epochs, so the "
        "float64 gaps, at the level of float64 rounding, are the check and the float32 curves "
        "show the practical agreement.\n",
        markdown_table(["epoch", "manual train", "autograd train", "manual val",
                        "autograd val", "largest gap"], gaps),
        f"\n![engines]({figures['engines']})\n",
        f"## 3. Sweep, selected by {results['select_by']} (validation)\n",
        markdown_table(headers, rows),
        f"\n![every config]({figures['sweep']})\n",
        "## 4. Selected config on the test set\n",
    ]
    if sel:
        swept = ", ".join(f"{k}={sel[k]}" for k in results["swept"])
        confusion = markdown_table(["true \\ predicted", *sel["class_names"]],
                                   [[n, *r] for n, r in zip(sel["class_names"],
                                                            sel["confusion_matrix"],
                                                            strict=True)])
        parts += [f"Selected: **{swept}** (validation loss {fmt(sel['val_loss'])}).\n",
                  f"Test loss **{fmt(sel['test_loss'])}**, test accuracy "
                  f"**{fmt(sel['test_accuracy'])}**.\n", confusion,
                  f"\n![confusion matrix]({figures['confusion']})\n"]
    else:
        parts.append("No config completed; nothing was selected.\n")
    return "\n".join(parts)
