"""The `handgrad` argument definitions: what each subcommand accepts, parsed and validated.

A single run (train, compare) takes one value per training option; a grid (sweep,
reproduce) takes lists. The two are defined apart, so that every option given reaches every
config or is refused. `parse()` returns the namespace with the validated `config`
(train, compare) or `spec` (sweep, reproduce) built, before any command touches a file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version

from handgrad.cli import argtypes, commands, grading
from handgrad.cli.exits import EXIT_BAD_INPUT, CLIError
from handgrad.engine.losses import LOSSES
from handgrad.engine.networks import MODELS
from handgrad.run.config import (
    ACTIVATIONS,
    DATASETS,
    DEVICES,
    DTYPES,
    ENGINES,
    EXERCISE_HIDDEN,
    OPTIMIZERS,
    TrainConfig,
)
from handgrad.run.sweep.spec import SELECT_BY, SweepSpec, mask_url

DEFAULT_EPOCHS = {"cifar10": 5, "digits": 40}
SubParsers = argparse._SubParsersAction

# Subcommand modules hook in here: each entry is a function `add_parsers(sub)` that adds its
# subcommands to `sub` and sets `func` (a handler `args -> exit code`) on each of them.
EXTRA_SUBCOMMANDS: tuple[Callable[[SubParsers], None], ...] = (grading.add_parsers,)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="cifar10",
                   help="cifar10 (from --data-dir) or the embedded digits (default: cifar10)")
    g.add_argument("--data-dir", default="data", help="root holding cifar-10-batches-py/")
    g.add_argument("--download", action="store_true",
                   help="download CIFAR-10 if missing (from $HANDGRAD_CIFAR10_URL if set, a "
                        "mirror; the official md5 is checked)")
    g.add_argument("--classes", nargs="+", type=argtypes.classes, metavar="CLASS",
                   help="class names or indices (default: airplane automobile; digits: 3 8)")
    g.add_argument("--standardize", action="store_true",
                   help="per-channel standardisation with training-split statistics")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training images held out for validation (default 0.1)")


def _add_shared_training_args(g: argparse._ArgumentGroup, engine: bool = True) -> None:
    """The options that take one value in a single run and in a grid alike (`--engine`
    but for compare, which trains both)."""
    g.add_argument("--activation", default="relu", help=f"one of {', '.join(ACTIVATIONS)}")
    g.add_argument("--loss", default="cross_entropy", help=f"one of {', '.join(LOSSES)}")
    if engine:
        g.add_argument("--engine", default="manual", help=f"one of {', '.join(ENGINES)}")
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam/AdamW moment decay rates (default: 0.9 0.999)")
    g.add_argument("--epochs", type=int, default=None,
                   help="default: 5 on cifar10, 40 on digits (4 steps an epoch there)")
    g.add_argument("--seed", type=argtypes.seed, default=0)
    g.add_argument("--device", choices=DEVICES, default="auto")
    g.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    g.add_argument("--keep-denormals", action="store_true",
                   help="keep IEEE subnormal floats (default: flushed to zero, faster)")
    g.add_argument("--out", type=argtypes.path, default=None,
                   help="run directory (default: runs/<time>-… for train and compare; for "
                        "sweep and reproduce runs/<command>-<dataset>-<hash of the settings>, "
                        "so that rerunning the same command resumes it)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_model_arg(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp: the exercise's network (default); cnn: conv-relu-pool twice, "
                        "then the MLP head of --hidden; mlp-bn: the MLP with batch norm and "
                        "dropout after each hidden layer (engine/networks.py)")


def add_single_run_args(p: argparse.ArgumentParser, engine: bool = True) -> None:
    """train, compare: one value per option."""
    g = p.add_argument_group("model and training")
    _add_model_arg(g)
    g.add_argument("--hidden", nargs="*", type=int, default=list(EXERCISE_HIDDEN),
                   help="hidden widths (default: 512 128 32, the exercise's network)")
    g.add_argument("--optimizer", default="sgd", help=f"one of {', '.join(OPTIMIZERS)}")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--momentum", type=float, default=0.0)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--batch-size", type=int, default=64)
    _add_shared_training_args(g, engine)


def add_grid_args(p: argparse.ArgumentParser) -> None:
    """sweep, reproduce: lists to sweep; a single value sets every config."""
    g = p.add_argument_group("model and training (lists are swept: every combination)")
    g.add_argument("--hidden", nargs="*", type=int, default=None,
                   help="hidden widths of every config (default: 512 128 32)")
    g.add_argument("--hidden-grid", nargs="+", type=argtypes.widths, default=None,
                   metavar="H1,H2,…", help="hidden sizes to sweep, e.g. 512,128,32 256,64")
    g.add_argument("--optimizer", nargs="+", default=None,
                   help=f"one or more of {', '.join(OPTIMIZERS)} (default: sgd)")
    g.add_argument("--lr", type=float, nargs="+", default=None)
    g.add_argument("--momentum", type=float, nargs="+", default=None)
    g.add_argument("--weight-decay", type=float, nargs="+", default=None,
                   help="without --lr, --momentum and --weight-decay: the exercise's four "
                        "(lr, weight decay, momentum) configs")
    g.add_argument("--batch-size", type=int, nargs="+", default=None, help="default: 64")
    _add_shared_training_args(g)
    g = p.add_argument_group("sweep")
    g.add_argument("--select-by", choices=SELECT_BY, default="val_loss")
    g.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="local worker processes, each config on one torch thread, so that "
                        "results do not depend on this number (default: 2, or 1 on a single "
                        "core)")
    g.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by several machines (default: a journal "
                        "file in --out)")


def _shared_config(args: argparse.Namespace, hidden: Sequence[int]) -> TrainConfig:
    """The settings every config of the command shares (validated by the caller)."""
    if args.download and args.dataset != "cifar10":
        raise CLIError(f"--download applies to cifar10 only, not --dataset {args.dataset}")
    classes = None if args.classes is None else tuple(c for g in args.classes for c in g)
    config = TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, download=args.download, classes=classes,
        standardize=args.standardize, val_fraction=args.val_fraction, hidden=tuple(hidden),
        model=getattr(args, "model", "mlp"), activation=args.activation, loss=args.loss,
        engine=getattr(args, "engine", "manual"),
        nesterov=args.nesterov,
        epochs=DEFAULT_EPOCHS[args.dataset] if args.epochs is None else args.epochs,
        seed=args.seed, device=args.device, dtype=args.dtype,
        keep_denormals=args.keep_denormals)
    return config if args.betas is None else config.replace(betas=tuple(args.betas))


def _check_betas_used(args: argparse.Namespace, optimizers: Sequence[str]) -> None:
    if args.betas is not None and not set(optimizers) & {"adam", "adamw"}:
        raise CLIError("--betas applies to --optimizer adam or adamw only")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated config of a single run (train, compare)."""
    config = _shared_config(args, args.hidden).replace(
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, batch_size=args.batch_size).validate()
    _check_betas_used(args, [config.optimizer])
    return config


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The validated sweep of a grid command (sweep, reproduce)."""
    if args.hidden is not None and args.hidden_grid is not None:
        raise CLIError("give --hidden (one network) or --hidden-grid (several), not both")
    base = _shared_config(args, EXERCISE_HIDDEN if args.hidden is None else args.hidden)
    hidden = [list(args.hidden)] if args.hidden is not None else args.hidden_grid
    spec = SweepSpec.from_grid(base, lr=args.lr, weight_decay=args.weight_decay,
                               momentum=args.momentum, optimizer=args.optimizer,
                               batch_size=args.batch_size, hidden=hidden,
                               command=args.command_line)
    _check_betas_used(args, [spec.config_for(v).optimizer for v in spec.configs()])
    return spec


def _set_config(args: argparse.Namespace) -> None:
    args.config = config_from_args(args)


def _set_spec(args: argparse.Namespace) -> None:
    args.spec = spec_from_args(args)


def add_run_parsers(sub: SubParsers) -> None:
    p = sub.add_parser("train", help="train one model (train and validation metrics)")
    add_data_args(p)
    add_single_run_args(p)
    p.add_argument("--test", action="store_true",
                   help="also evaluate on the test set (keep it for the end: choose settings "
                        "on validation first)")
    p.set_defaults(func=commands.cmd_train, build=_set_config)

    p = sub.add_parser("compare", help="train both engines from one start and compare curves")
    add_data_args(p)
    add_single_run_args(p, engine=False)
    p.set_defaults(func=commands.cmd_compare, build=_set_config)

    p = sub.add_parser("sweep", help="grid sweep, select on validation, evaluate on test")
    add_data_args(p)
    add_grid_args(p)
    _add_model_arg(p.add_argument_group("model (part of the settings: one study a model)"))
    p.set_defaults(func=commands.cmd_sweep, build=_set_spec)

    p = sub.add_parser("reproduce", help="the whole classic exercise, with a report")
    add_data_args(p)
    add_grid_args(p)
    p.set_defaults(func=commands.cmd_reproduce, build=_set_spec)

    p = sub.add_parser("evaluate", help="evaluate a saved run on its test set")
    p.add_argument("run_dir", type=argtypes.path)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", choices=DATASETS, default=None)
    p.add_argument("--classes", nargs="+", type=argtypes.classes, metavar="CLASS")
    p.add_argument("--device", choices=DEVICES, default=None)
    p.set_defaults(func=commands.cmd_evaluate)


def add_check_parsers(sub: SubParsers) -> None:
    p = sub.add_parser("gradcheck", help="check hand-written gradients of a network")
    p.add_argument("--sizes", nargs="+", type=argtypes.positive_int,
                   default=[3072, 512, 128, 32, 2],
                   help="inputs, hidden widths, outputs (default: the exercise's)")
    p.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp: the exercise's MLP and its backpropagation; cnn, mlp-bn: the "
                        "networks of hand-written layers (see train --model)")
    p.add_argument("--image-shape", nargs=3, type=argtypes.positive_int, default=None,
                   metavar=("C", "H", "W"),
                   help="images of --model cnn and mlp-bn (default: 3 32 32); C·H·W must be "
                        "the first --sizes")
    p.add_argument("--activation", default="relu")
    p.add_argument("--loss", default="cross_entropy")
    p.add_argument("--batch-size", type=argtypes.positive_int, default=8)
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float64")
    p.add_argument("--max-entries", type=argtypes.positive_int, default=30,
                   help="finite differences on at most this many entries a tensor")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.set_defaults(func=commands.cmd_gradcheck)


def build_parser() -> Parser:
    parser = Parser(
        prog="handgrad", description="Backpropagation written by hand, proven against autograd.")
    parser.add_argument("--version", action="version", version=f"handgrad {version('handgrad')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parsers(sub)
    add_check_parsers(sub)
    for add_parsers in EXTRA_SUBCOMMANDS:
        add_parsers(sub)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, with its `config` or `spec` built and validated.

    Raises SystemExit where argparse stops (--help, a usage error: one line, exit 2) and
    ValueError or CLIError for a bad value; nothing has been written either way.
    """
    args = build_parser().parse_args(argv)
    # recorded in config.json and results.json: never with a database password in it
    args.command_line = ["handgrad", *(mask_url(a) for a in (sys.argv[1:] if argv is None
                                                              else argv))]
    build = getattr(args, "build", None)
    if build is not None:
        build(args)
    return args
