"""`handgrad check-backprop` and `handgrad grade`: their arguments and their rendering.

Exit codes: 0 passed (every submission), 1 failed (a wrong gradient, or a submission that
crashed, hung or exited), 2 the grader could not grade: it was misused (no such file or
function, bad option), or it failed itself (one line saying so; in `grade`, the
submissions it failed on are "not_graded" and graded again on the next run), or `grade`
refused to run where the sandbox does not hold (without --unconfined).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from handgrad.cli.exits import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, CLIError
from handgrad.engine.losses import LOSSES
from handgrad.grade.batch import grade_iter
from handgrad.grade.collect import among_submissions, find_submissions, student_folder
from handgrad.grade.gradebook import BatchResult, read_previous, write_grades
from handgrad.grade.grader import GraderError, grade_file, load_target
from handgrad.grade.gradescope import VISIBILITY, gradescope_results
from handgrad.grade.layers.contract import parse_functions
from handgrad.grade.layers.grader import grade_file as grade_layers
from handgrad.grade.layers.result import LayersResult
from handgrad.grade.result import CheckResult
from handgrad.grade.sandbox.isolate import Limits, probe
from handgrad.report.dashboard import write_dashboard
from handgrad.report.tables import text_table

LARGEST = 1e7  # seconds (115 days) or MB (10 TB): beyond, an rlimit overflows


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value <= LARGEST:  # nan and inf too: a limit the system cannot hold
            raise argparse.ArgumentTypeError(f"{text!r}: must be > 0 and at most {LARGEST:g}")
        return value
    return parse


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--assignment", choices=("mlp", "layers"), default="mlp",
                   help="mlp: backpropagation(model, y_true, y_pred) (default); layers: "
                        "CS231n-style layer functions (docs/grading.md)")
    p.add_argument("--functions", default=None, metavar="NAMES",
                   help="with --assignment layers: the functions to grade, comma-separated "
                        "(default: all), e.g. batchnorm_backward,layernorm_backward")
    p.add_argument("--function", default=None,
                   help="the function to grade (default: backpropagation)")
    p.add_argument("--loss", nargs="+", default=None, choices=sorted(LOSSES),
                   help="the loss the function assumes (default: sse); several: each is "
                        "graded, the function called as f(model, y_true, y_pred, loss_name)")
    p.add_argument("--timeout", type=_positive(float), default=60.0,
                   help="wall-clock seconds a submission may run (default: 60)")
    p.add_argument("--cpu", type=_positive(int), default=None, metavar="S",
                   help="CPU seconds a submission may use, all its threads together "
                        "(default: the timeout plus one)")
    p.add_argument("--memory", type=_positive(int), default=4096, metavar="MB",
                   help="address space a submission may add to its start-up (default: 4096)")
    p.add_argument("--allow-autograd", action="store_true",
                   help="do not fail submissions that call .backward() or autograd.grad")


COMMANDS = ("check-backprop", "grade")


def parse(argv: list[str]) -> argparse.Namespace:
    """`handgrad check-backprop …` or `handgrad grade …` parsed (the same parsers as in the
    whole command line's help, built alone)."""
    parser = argparse.ArgumentParser(prog="handgrad")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The check-backprop and grade subcommands."""
    p = sub.add_parser("check-backprop", help="grade one hand-written backpropagation function")
    p.add_argument("target", help="FILE.py, FILE.ipynb or a student's folder, optionally "
                                  ":FUNCTION")
    _add_limits(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.add_argument("--gradescope", type=Path, default=None, metavar="PATH",
                   help="also write Gradescope's results.json to PATH")
    p.add_argument("--visibility", choices=VISIBILITY, default="visible",
                   help="Gradescope's visibility of the results (default: visible)")
    p.set_defaults(func=cmd_check_backprop)

    p = sub.add_parser("grade", help="grade a folder of submissions: grades.csv, grades.json")
    p.add_argument("submissions", nargs="+", help="files, student folders, or folders of them")
    _add_limits(p)
    p.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1,
                   help="submissions graded at once (default: the number of cores)")
    p.add_argument("--out", type=Path, default=Path("grades"),
                   help="where grades.csv and grades.json go (default: ./grades)")
    p.add_argument("--quiet", action="store_true", help="no line per submission")
    p.add_argument("--only", action="append", default=[], metavar="ID",
                   help="grade this submission again (repeatable); keep the others' grades")
    p.add_argument("--unconfined", action="store_true",
                   help="grade even where the sandbox's namespaces are refused (then each "
                        "submission can read the others: prefer one container per submission)")
    p.set_defaults(func=cmd_grade)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(timeout=args.timeout, memory_mb=args.memory, cpu_s=args.cpu)


def _functions(args: argparse.Namespace) -> tuple[str, ...]:
    """The layer functions to grade (empty for the MLP assignment), checked; the MLP's
    options refused with the layers assignment and the reverse."""
    if args.assignment == "mlp":
        if args.functions is not None:
            raise CLIError("--functions applies to --assignment layers")
        args.loss = args.loss or ["sse"]
        return ()
    if args.function is not None or args.loss is not None:
        raise CLIError("--function and --loss apply to --assignment mlp; the layers "
                       "assignment takes --functions")
    try:
        return parse_functions(args.functions)
    except ValueError as e:
        raise CLIError(f"--functions: {e}") from None


def cmd_check_backprop(args: argparse.Namespace) -> int:
    functions = _functions(args)
    path, name = load_target(args.target)
    if functions and ":" in args.target and name != "backpropagation":
        raise CLIError(f"{args.target}: the layers assignment grades the module's functions; "
                       "name them with --functions")
    function = functions[0] if functions else args.function or name
    alone = path.is_file() and among_submissions(path, function)  # a class's folder
    if path.is_dir():  # a student's folder: the file in it that defines the function
        path = student_folder(path, function).path or path
    if not path.is_file():
        raise CLIError(f"{path}: no such file" if not path.is_dir() else
                       f"{path}: no .py or .ipynb file in this folder defines {function}()")
    if args.gradescope is not None:
        _check_writable("--gradescope", args.gradescope, folder=False)
    with _terminate_as_interrupt():
        try:
            result = grade_layers(path, functions, _limits(args), args.allow_autograd,
                                  importable=not alone) if functions else \
                grade_file(path, function, args.loss, _limits(args), args.allow_autograd,
                           importable=not alone)
        except GraderError as e:
            raise CLIError(f"the grader failed (not the submission): {e}") from None
    if result.error_kind == "no_function":
        raise CLIError(f"{path}: {result.error}")
    if args.gradescope is not None:
        _write_json(args.gradescope, gradescope_results(result, args.visibility))
    print(isolation_line(result.isolation), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        _render(result)
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


PROTECTIONS = (("no_network", "no network"), ("read_only_files", "only its own files"),
               ("own_processes", "own processes"))


def isolation_line(isolation: dict) -> str:
    """One line: which of the sandbox's protections held, and which did not."""
    held = [name for key, name in PROTECTIONS if isolation.get(key)]
    missing = [name for key, name in PROTECTIONS if not isolation.get(key)]
    note = f"; NOT held: {', '.join(missing)} (see docs/grading.md)" if missing else ""
    return f"isolation: child process with limits{', ' if held else ''}{', '.join(held)}{note}"


def _render(result: CheckResult | LayersResult) -> None:
    print(result if result.cases else result.summary())
    if result.output:
        print(f"\nthe submission printed (cut):\n{result.output}")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a Gradescope timeout, `kill`) ends grading as Ctrl-C does: through every
    `finally`, so that no child and no folder is left."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def _check_writable(flag: str, path: Path, folder: bool) -> None:
    """Before grading anyone: `path` (a folder, or a file) can be made where it is asked for."""
    if path.exists() and path.is_dir() != folder:
        raise CLIError(f"{flag} {path}: exists and is not a {'folder' if folder else 'file'}")
    above = next(p for p in path.parents if p.exists())
    if not above.is_dir():
        raise CLIError(f"{flag} {path}: {above} is not a folder")


def cmd_grade(args: argparse.Namespace) -> int:
    functions = _functions(args)
    function = args.function or "backpropagation"
    subs = find_submissions(args.submissions, functions[0] if functions else function)
    _check_writable("--out", args.out, folder=True)
    with _terminate_as_interrupt():
        _refuse_unconfined(args.unconfined)
        previous = read_previous(args.out)
        by_id = _grade_all(args, subs, function, functions)
    batch = BatchResult([by_id[s.id] for s in subs if s.id in by_id], previous)
    write_grades(args.out, batch)
    write_dashboard(args.out, batch.entries)
    _render_summary(batch, args.out)
    if batch.not_graded:
        return EXIT_BAD_INPUT
    return EXIT_OK if batch.passed == len(subs) else EXIT_CHECK_FAILED


def _refuse_unconfined(unconfined: bool) -> None:
    """Say which protections hold before grading; refuse when one does not, unless told."""
    try:
        held = probe()
    except GraderError as e:
        raise CLIError(f"the grader failed (not the submissions): {e}") from None
    line = isolation_line(held)
    print(line, flush=True)
    if "NOT held" in line and not unconfined:
        raise CLIError("the sandbox does not hold here (Docker's default seccomp profile "
                       "refuses namespaces): each submission could read and change the "
                       "others. Grade one submission per container (as Gradescope does: "
                       "check-backprop), or pass --unconfined to grade anyway")


def _grade_all(args: argparse.Namespace, subs: list, function: str,
               functions: tuple[str, ...]) -> dict[str, dict]:
    by_id = {}
    for done, (entry, reused) in enumerate(
            grade_iter(subs, function, args.loss, args.jobs, _limits(args),
                       args.allow_autograd, args.out, args.only, args.assignment,
                       functions or None), start=1):
        by_id[entry["id"]] = entry
        if not args.quiet:
            verdict = "pass" if entry["passed"] else f"FAIL {entry['kind']}"
            note = " (unchanged, kept)" if reused else f" ({entry['seconds']:.1f} s)"
            path = entry.get("path")
            graded = f" [{Path(path).name}]" if path and Path(path).stem != entry["id"] else ""
            print(f"[{done}/{len(subs)}] {entry['id']}{graded}: {entry['score']:g}/"
                  f"{entry['max_score']:g} {verdict}{note}", flush=True)
    return by_id


def _render_summary(batch: BatchResult, out: Path) -> None:
    s = batch.summary()
    print(f"{s['passed']} of {s['submissions']} passed, mean score {s['mean_score']:g}")
    open_ = [e["id"] for e in batch.entries if e.get("result", {}).get("isolation")
             and not all(e["result"]["isolation"].get(k) for k, _ in PROTECTIONS)]
    if open_:
        print(f"warning: the network / file-system / PID namespaces did not all hold for "
              f"{len(open_)} submission(s) (e.g. {open_[0]}): see docs/grading.md")
    if s["most_common_mistakes"]:
        print(text_table(["most common mistakes", "submissions"], s["most_common_mistakes"]))
    if batch.previous:
        print(f"{len(batch.changes)} grade(s) changed since the last run: "
              f"{out / 'changes.csv'}")
    if batch.similar:
        print(f"{len(batch.similar)} pair(s) of submissions look alike (for you to read, "
              f"grades unchanged): {out / 'similar.csv'}")
    if batch.not_graded:
        print(f"NOT graded (the grader failed, not the students; graded again on the next "
              f"run): {', '.join(batch.not_graded[:10])}", file=sys.stderr)
    print(f"grades: {out / 'grades.csv'}, {out / 'grades.json'}; the class at a glance: "
          f"{out / 'report.html'}", file=sys.stdout)


__all__ = ["EXIT_BAD_INPUT", "add_parsers", "cmd_check_backprop", "cmd_grade"]
