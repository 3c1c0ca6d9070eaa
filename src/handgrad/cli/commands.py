"""What each `handgrad` subcommand does: call the library, render its results.

Each handler takes the namespace `parser.parse()` returns, whose `config` (train, compare)
or `spec` (sweep, reproduce) is already validated, and returns the exit code.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from handgrad.check.gradcheck import gradcheck
from handgrad.check.reference import random_problem
from handgrad.cli.exits import EXIT_CHECK_FAILED, EXIT_DIVERGED, EXIT_OK, as_flags
from handgrad.data import download_cifar10
from handgrad.engine.losses import get_loss
from handgrad.report import figures, html, plots
from handgrad.report.progress_bars import EpochProgress, RunProgress, print_line
from handgrad.report.sweep import terminal_text, write_results_md
from handgrad.report.tables import (
    confusion_table,
    fmt,
    gap_table,
    summary_table,
    text_table,
)
from handgrad.run.compare import compare_engines
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.evaluate import evaluate_run
from handgrad.run.memory_estimate import check_fits, network_bytes
from handgrad.run.rundir import CURVES, RunDir, default_run_dir
from handgrad.run.sweep.coordinator import run_sweep
from handgrad.run.sweep.spec import fingerprint
from handgrad.run.train import train

DIVERGED_SETTINGS = ("lr", "weight_decay")  # what a diverged run's message says to lower


def say(text: str = "") -> None:
    print_line(text)


def confusion_text(matrix, names) -> str:
    return text_table(*confusion_table(matrix, names))


def cmd_train(args: argparse.Namespace) -> int:
    config = args.config
    out = args.out or default_run_dir(f"{config.dataset}-{config.engine}")
    result = train(config, load_data(config, progress=not args.quiet), out_dir=out,
                   observer=EpochProgress(args.quiet), evaluate_test=args.test,
                   command=args.command_line)
    say(text_table(*summary_table(result.summary(), test=result.test is not None)))
    if result.test is not None:
        say(confusion_text(result.test.confusion, result.class_names))
    elif result.status == "completed":
        say("test set not used (it is kept for the end: add --test, or run handgrad evaluate)")
    if result.history:
        plots.save(figures.run_figure(result), RunDir(out).file(CURVES))
    say(f"report: {html.write_run(result, out)}")
    say(f"run directory: {out}")
    if result.status == "diverged":
        print(f"handgrad: diverged: {as_flags(result.message, DIVERGED_SETTINGS)}",
              file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    config = args.config
    out = args.out or default_run_dir(f"{config.dataset}-compare")
    comparison = compare_engines(config, load_data(config, progress=not args.quiet),
                                 out_dir=out, observer=EpochProgress(args.quiet),
                                 command=args.command_line)
    say(text_table(*gap_table(comparison.gaps())))
    say(f"largest gap over all epochs ({config.dtype}): {fmt(comparison.max_gap())}")
    plot = plots.save(figures.comparison_figure(comparison), Path(out) / "engines.png")
    say(f"plot: {plot}")
    diverged = [r for r in (comparison.manual, comparison.autograd) if r.status != "completed"]
    return EXIT_DIVERGED if diverged else EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    classes = None if args.classes is None else [c for g in args.classes for c in g]
    ev = evaluate_run(args.run_dir, args.data_dir, args.dataset, classes, args.device)
    say(text_table(["metric", "value"], [["test_loss", ev.loss], ["test_accuracy", ev.accuracy]]))
    names = RunDir(args.run_dir).read_record()["class_names"]
    say(confusion_text(ev.confusion, names))
    return EXIT_OK


def cmd_gradcheck(args: argparse.Namespace) -> int:
    loss = get_loss(args.loss).name
    if loss == "cross_entropy" and args.sizes[-1] < 2:
        raise ValueError(f"--loss cross_entropy needs at least 2 outputs, got --sizes ending "
                         f"in {args.sizes[-1]}: a softmax over one output is constant (every "
                         "gradient is 0); use 2 or more outputs, or --loss bce_with_logits")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    check_fits(network_bytes(args.sizes, dtype, args.batch_size, copies=6), torch.device("cpu"),
               f"gradcheck --sizes {' '.join(map(str, args.sizes))}")
    if args.model == "mlp" and args.image_shape is not None:
        raise ValueError("--image-shape is for --model cnn and mlp-bn; the MLP takes rows of "
                         "--sizes[0] inputs")
    image_shape = tuple(args.image_shape or (3, 32, 32))
    if args.model != "mlp" and math.prod(image_shape) != args.sizes[0]:
        raise ValueError(f"--sizes starts with {args.sizes[0]} inputs but --image-shape "
                         f"{' '.join(map(str, image_shape))} has {math.prod(image_shape)}")
    problem = random_problem(args.sizes, args.activation, loss, args.batch_size, args.seed, dtype,
                             model=args.model, image_shape=image_shape)
    model, x, y = problem.model, problem.x, problem.y_true
    report = gradcheck(model, x, y, loss, max_entries=args.max_entries, seed=args.seed)
    network = "-".join(map(str, args.sizes))
    if args.model != "mlp":
        network = f"{args.model} {'x'.join(map(str, image_shape))} {network}"
    say(f"gradcheck {network} {args.activation} {loss} "
        f"N={args.batch_size} {report.dtype} (step {report.step:g})")
    say(text_table(report.HEADERS, report.rows()))
    for w in report.warnings:
        say(f"warning: {w}")
    bad = report.first_failure()
    say("all gradients agree" if bad is None else f"first wrong tensor: {bad.name}")
    return EXIT_OK if report.passed else EXIT_CHECK_FAILED


def fetch_data(config: TrainConfig, quiet: bool) -> None:
    """--download for sweep and reproduce, done here where --quiet is known (their library
    calls then find the data in place)."""
    if config.download and config.dataset == "cifar10":
        download_cifar10(Path(config.data_dir), progress=not quiet)


def grid_out(args: argparse.Namespace, command: str) -> Path:
    """The folder of a sweep or reproduce: --out, or one named after the settings (the same
    for the same command); the data fetched first when --download asks."""
    spec = args.spec
    fetch_data(spec.base, args.quiet)
    return args.out or Path("runs") / f"{command}-{spec.base.dataset}-{fingerprint(spec)}"


def cmd_sweep(args: argparse.Namespace) -> int:
    out = grid_out(args, "sweep")
    with RunProgress(args.quiet) as progress:
        summary = run_sweep(out, args.spec, workers=args.workers, storage=args.storage,
                            select_by=args.select_by, progress=progress)
    say(terminal_text(summary))
    markdown = write_results_md(out, summary)
    plot = plots.save(figures.sweep_figure(summary), Path(out) / "sweep_curves.png")
    say(f"results: {markdown}; plot: {plot}; report: {html.write_sweep(summary, out)}")
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from handgrad.report.markdown import reproduce_text, write_report
    from handgrad.run.reproduce import PHASES, reproduce

    out = grid_out(args, "reproduce")
    with RunProgress(args.quiet, phases=PHASES, sweep_prefix="3. sweep ") as progress:
        result = reproduce(args.spec, out, workers=args.workers, storage=args.storage,
                           select_by=args.select_by, progress=progress)
    write_report(result)
    say(reproduce_text(result))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED
