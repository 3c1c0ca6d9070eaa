"""`handgrad check-backprop` and `handgrad grade`: their arguments and their rendering.

Exit codes: 0 passed (every submission), 1 failed (a wrong gradient, or a submission that
crashed, hung or exited), 2 the grader was misused (no such file or function, bad option).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from handgrad.cli.exits import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, CLIError
from handgrad.engine.losses import LOSSES
from handgrad.grade.batch import (
    BatchResult,
    find_submissions,
    grade_iter,
    student_folder,
    write_grades,
)
from handgrad.grade.grader import grade_file, load_target
from handgrad.grade.gradescope import gradescope_results
from handgrad.grade.result import CheckResult
from handgrad.grade.sandbox.isolate import Limits
from handgrad.report.dashboard import write_dashboard
from handgrad.report.tables import text_table


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
        return value
    return parse


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", default=None,
                   help="the function to grade (default: backpropagation)")
    p.add_argument("--loss", nargs="+", default=["sse"], choices=sorted(LOSSES),
                   help="the loss the function assumes (default: sse); several: each is "
                        "graded, the function called as f(model, y_true, y_pred, loss_name)")
    p.add_argument("--timeout", type=_positive(float), default=60.0,
                   help="wall-clock seconds a submission may run (default: 60)")
    p.add_argument("--memory", type=_positive(int), default=4096, metavar="MB",
                   help="address space a submission may add to its start-up (default: 4096)")
    p.add_argument("--allow-autograd", action="store_true",
                   help="do not fail submissions that call .backward() or autograd.grad")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The check-backprop and grade subcommands."""
    p = sub.add_parser("check-backprop", help="grade one hand-written backpropagation function")
    p.add_argument("target", help="FILE.py, FILE.ipynb or a student's folder, optionally "
                                  ":FUNCTION")
    _add_limits(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.add_argument("--gradescope", type=Path, default=None, metavar="PATH",
                   help="also write Gradescope's results.json to PATH")
    p.set_defaults(func=cmd_check_backprop)

    p = sub.add_parser("grade", help="grade a folder of submissions: grades.csv, grades.json")
    p.add_argument("submissions", nargs="+", help="files, student folders, or folders of them")
    _add_limits(p)
    p.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1,
                   help="submissions graded at once (default: the number of cores)")
    p.add_argument("--out", type=Path, default=Path("grades"),
                   help="where grades.csv and grades.json go (default: ./grades)")
    p.add_argument("--quiet", action="store_true", help="no line per submission")
    p.set_defaults(func=cmd_grade)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(timeout=args.timeout, memory_mb=args.memory)


def cmd_check_backprop(args: argparse.Namespace) -> int:
    path, name = load_target(args.target)
    function = args.function or name
    if path.is_dir():  # a student's folder: the file in it that defines the function
        path = student_folder(path, function).path or path
    if not path.is_file():
        raise CLIError(f"{path}: no such file" if not path.is_dir() else
                       f"{path}: no .py or .ipynb file in this folder defines {function}()")
    result = grade_file(path, function, args.loss, _limits(args), args.allow_autograd)
    if result.error_kind == "no_function":
        raise CLIError(f"{path}: {result.error}")
    if args.gradescope is not None:
        _write_json(args.gradescope, gradescope_results(result))
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        _render(result)
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def _render(result: CheckResult) -> None:
    print(result if result.cases else result.summary())
    iso = result.isolation
    held = [name for key, name in (("no_network", "no network"),
                                   ("read_only_files", "read-only files"),
                                   ("own_processes", "own PID namespace")) if iso.get(key)]
    missing = [name for key, name in (("no_network", "network"),
                                      ("read_only_files", "file system"),
                                      ("own_processes", "processes")) if not iso.get(key)]
    note = f"; NOT isolated: {', '.join(missing)}" if missing else ""
    print(f"isolation: child process, {', '.join(held) or 'limits only'}{note}")
    if result.output:
        print(f"\nthe submission printed (cut):\n{result.output}")


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def cmd_grade(args: argparse.Namespace) -> int:
    function = args.function or "backpropagation"
    subs = find_submissions(args.submissions, function)
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out}: exists and is not a folder")
    by_id = {}
    for done, (entry, reused) in enumerate(
            grade_iter(subs, function, args.loss, args.jobs, _limits(args),
                       args.allow_autograd, args.out), start=1):
        by_id[entry["id"]] = entry
        if not args.quiet:
            verdict = "pass" if entry["passed"] else f"FAIL {entry['kind']}"
            note = " (unchanged, kept)" if reused else f" ({entry['seconds']:.1f} s)"
            path = entry.get("path")
            graded = f" [{Path(path).name}]" if path and Path(path).stem != entry["id"] else ""
            print(f"[{done}/{len(subs)}] {entry['id']}{graded}: {entry['score']:g}/"
                  f"{entry['max_score']:g} {verdict}{note}", flush=True)
    batch = BatchResult([by_id[s.id] for s in subs])
    write_grades(args.out, batch)
    write_dashboard(args.out, batch.entries)
    _render_summary(batch, args.out)
    return EXIT_OK if batch.passed == len(subs) else EXIT_CHECK_FAILED


def _render_summary(batch: BatchResult, out: Path) -> None:
    s = batch.summary()
    print(f"{s['passed']} of {s['submissions']} passed, mean score {s['mean_score']:g}")
    open_ = [e["id"] for e in batch.entries if e.get("result", {}).get("isolation")
             and not all(e["result"]["isolation"].get(k) for k in
                         ("no_network", "read_only_files", "own_processes"))]
    if open_:
        print(f"warning: the network / file-system / PID namespaces did not all hold for "
              f"{len(open_)} submission(s) (e.g. {open_[0]}): see docs/grading.md")
    if s["most_common_mistakes"]:
        print(text_table(["most common mistakes", "submissions"], s["most_common_mistakes"]))
    print(f"grades: {out / 'grades.csv'}, {out / 'grades.json'}; the class at a glance: "
          f"{out / 'report.html'}", file=sys.stdout)


__all__ = ["EXIT_BAD_INPUT", "add_parsers", "cmd_check_backprop", "cmd_grade"]
