"""Exit codes of the `handgrad` command and `CLIError`, the CLI's own bad-input error.

0 success; 1 a check failed (gradcheck, check-backprop, the gradient check of reproduce) or a
sweep could not finish (rerun it to resume); 2 bad input (one line on stderr, nothing
written); 3 training diverged (the run directory is still consistent); 130 interrupted;
141 a pipe closed where the work cannot go on without it, as SIGPIPE ends a tool (a closed
stdout while training is not one: the run goes on quietly).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class CLIError(Exception):
    """Bad input found by the CLI itself: one line on stderr, exit code 2."""
