"""The `handgrad` command line: parsing and validation here, the work in the library.

Exit codes: 0 success; 1 a check failed (gradcheck, check-backprop, the gradient check of
reproduce) or a sweep could not finish (rerun it to resume); 2 bad input (one line on
stderr, nothing written); 3 training diverged (the run directory is still consistent).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from handgrad.check.grader import SubmissionError
from handgrad.cli.exits import (  # noqa: F401 (re-exported)
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_DIVERGED,
    EXIT_OK,
    CLIError,
)
from handgrad.engine.losses import LOSSES
from handgrad.run.config import (
    ACTIVATIONS,
    DATASETS,
    DEVICES,
    DTYPES,
    ENGINES,
    OPTIMIZERS,
    TrainConfig,
)
from handgrad.run.sweep_spec import SweepError

DEFAULT_EPOCHS = {"cifar10": 5, "digits": 40}


def _classes(text: str) -> list[str]:
    return [c for c in text.split(",") if c]


def _widths(text: str) -> str:
    """'512,128,32' checked and normalised; argparse reports a ValueError as a usage error."""
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of widths like 512,128,32") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be >= 1")
    return ",".join(map(str, widths))


def _flat(values: Sequence[Sequence[str]] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(c for group in values for c in group)


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="cifar10",
                   help="cifar10 (from --data-dir) or the embedded digits (default: cifar10)")
    g.add_argument("--data-dir", default="data", help="root holding cifar-10-batches-py/")
    g.add_argument("--download", action="store_true",
                   help="download CIFAR-10 if missing (from $HANDGRAD_CIFAR10_URL if set, a "
                        "mirror; the official md5 is checked)")
    g.add_argument("--classes", nargs="+", type=_classes, metavar="CLASS",
                   help="class names or indices (default: airplane automobile; digits: 3 8)")
    g.add_argument("--standardize", action="store_true",
                   help="per-channel standardisation with training-split statistics")
    g.add_argument("--val-fraction", type=float, default=0.1)


def add_model_args(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--hidden", nargs="*", type=int, default=[512, 128, 32],
                   help="hidden widths (default: 512 128 32, the exercise's network)")
    g.add_argument("--activation", default="relu", help=f"one of {', '.join(ACTIVATIONS)}")
    g.add_argument("--loss", default="cross_entropy", help=f"one of {', '.join(LOSSES)}")
    g.add_argument("--engine", default="manual", help=f"one of {', '.join(ENGINES)}")
    many = "+" if sweep else None
    g.add_argument("--optimizer", default=["sgd"] if sweep else "sgd", nargs=many,
                   help=f"one of {', '.join(OPTIMIZERS)}")
    g.add_argument("--lr", type=float, nargs=many, default=None if sweep else 0.01)
    g.add_argument("--momentum", type=float, nargs=many, default=None if sweep else 0.0)
    g.add_argument("--weight-decay", type=float, nargs=many, default=None if sweep else 0.0)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999), metavar=("B1", "B2"),
                   help="Adam/AdamW moment decay rates (default: 0.9 0.999)")
    g.add_argument("--epochs", type=int, default=None,
                   help="default: 5 on cifar10, 40 on digits (4 steps an epoch there)")
    g.add_argument("--batch-size", type=int, nargs=many, default=[64] if sweep else 64)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", choices=DEVICES, default="auto")
    g.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    g.add_argument("--out", type=Path, default=None,
                   help="run directory (default: runs/<time>-… for train and compare; for "
                        "sweep and reproduce runs/<command>-<dataset>-<hash of the settings>, "
                        "so that rerunning the same command resumes it)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, **override) -> TrainConfig:
    values = dict(
        dataset=args.dataset, data_dir=args.data_dir, download=args.download,
        classes=_flat(args.classes), standardize=args.standardize,
        val_fraction=args.val_fraction, hidden=tuple(args.hidden), activation=args.activation,
        loss=args.loss, engine=args.engine, nesterov=args.nesterov, betas=tuple(args.betas),
        epochs=DEFAULT_EPOCHS[args.dataset] if args.epochs is None else args.epochs,
        seed=args.seed, device=args.device, dtype=args.dtype,
    )
    for name in ("optimizer", "lr", "momentum", "weight_decay", "batch_size"):
        value = getattr(args, name)
        if value is not None and not isinstance(value, list):
            values[name] = value
    values.update(override)
    return TrainConfig(**values).validate()


def build_parser() -> argparse.ArgumentParser:
    from handgrad.cli import commands, grading

    parser = argparse.ArgumentParser(
        prog="handgrad", description="Backpropagation written by hand, proven against autograd.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one model")
    add_data_args(p)
    add_model_args(p)
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("compare", help="train both engines from one start and compare curves")
    add_data_args(p)
    add_model_args(p)
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("evaluate", help="evaluate a saved run on its test set")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", choices=DATASETS, default=None)
    p.add_argument("--classes", nargs="+", type=_classes, metavar="CLASS")
    p.add_argument("--device", choices=DEVICES, default=None)
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("gradcheck", help="check hand-written gradients of a network")
    p.add_argument("--sizes", nargs="+", type=int, default=[3072, 512, 128, 32, 2])
    p.add_argument("--activation", default="relu")
    p.add_argument("--loss", default="cross_entropy")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float64")
    p.add_argument("--max-entries", type=int, default=30,
                   help="finite differences on at most this many entries a tensor")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.cmd_gradcheck)

    grading.add_parsers(sub)

    p = sub.add_parser("sweep", help="grid sweep, select on validation, evaluate on test")
    add_data_args(p)
    add_model_args(p, sweep=True)
    add_sweep_args(p)
    p.set_defaults(func=commands.cmd_sweep)

    p = sub.add_parser("reproduce", help="the whole classic exercise, with a report")
    add_data_args(p)
    add_model_args(p, sweep=True)
    add_sweep_args(p)
    p.set_defaults(func=commands.cmd_reproduce)
    return parser


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sweep")
    g.add_argument("--select-by", choices=("val_loss", "val_accuracy"), default="val_loss")
    g.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="local worker processes, the torch threads divided among them "
                        "(default: 2, or 1 on a single core: one process leaves part of two "
                        "cores idle, see benchmarks/RESULTS.md)")
    g.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by several machines (default: a journal "
                        "file in --out)")
    g.add_argument("--hidden-grid", nargs="+", type=_widths, default=None, metavar="H1,H2,…",
                   help="hidden sizes to sweep, e.g. 512,128,32 256,64")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage line
        return int(e.code or 0)
    args.command_line = ["handgrad", *(sys.argv[1:] if argv is None else argv)]
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, CLIError, SubmissionError) as e:
        print(f"handgrad: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SweepError as e:
        print(f"handgrad: sweep incomplete: {_one_line(e)}", file=sys.stderr)
        return EXIT_CHECK_FAILED


def run() -> None:
    """The `handgrad` command: `main()`, then exit without the interpreter's teardown.

    Freeing the modules of torch, torch._dynamo and matplotlib at exit takes about a second,
    and there is nothing to clean up by then: every file handgrad writes is closed when
    written, every worker process has been joined, and the streams are flushed here.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe: nothing more can reach it anyway
            stream.flush()
    os._exit(code)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


if __name__ == "__main__":
    run()
