"""The `handgrad` command: parse, run the subcommand, turn errors into exit codes.

Exit codes (see `exits.py`): 0 success; 1 a check failed or a sweep could not finish; 2 bad
input (one line on stderr, nothing written); 3 training diverged; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from handgrad.cli import grading
from handgrad.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    CLIError,
    flag_message,
)
from handgrad.grade.grader import SubmissionError
from handgrad.run.sweep_spec import SweepError


def main(argv: Sequence[str] | None = None) -> int:
    """Run `handgrad ARGV...` and return its exit code (tests call this directly)."""
    try:
        args = parse(argv)
        return args.func(args)
    except SystemExit as e:  # argparse: --help (0) or a usage error it has printed (2)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away: stop quietly, as SIGPIPE stops a tool
        _silence_output()
        return EXIT_BROKEN_PIPE
    except (ValueError, OSError, CLIError, SubmissionError) as e:
        print(f"handgrad: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SweepError as e:
        print(f"handgrad: sweep incomplete: {_one_line(e)}", file=sys.stderr)
        return EXIT_CHECK_FAILED


def parse(argv: Sequence[str] | None = None) -> Any:
    """The parsed command line. The grading commands are parsed alone, without importing
    training, sweeps and figures: a student's `check-backprop` starts as fast as torch."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] and words[0] in grading.COMMANDS:
        return grading.parse(words)
    from handgrad.cli.parser import parse as parse_all

    return parse_all(argv)


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


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null, so that no later flush meets the broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _one_line(e: BaseException) -> str:
    text = " ".join(flag_message(e).split())
    return text or type(e).__name__
