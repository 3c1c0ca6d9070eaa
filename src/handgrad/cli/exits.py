"""Exit codes of the `handgrad` command, `CLIError` (the CLI's own bad-input error), and
the library's messages as the CLI words them: settings written as flags.

0 success; 1 a check failed (gradcheck, check-backprop, the gradient check of reproduce) or a
sweep could not finish (rerun it to resume); 2 bad input (one line on stderr, nothing
written); 3 training diverged (the run directory is still consistent); 130 interrupted;
141 a pipe closed where the work cannot go on without it, as SIGPIPE ends a tool (a closed
stdout while training is not one: the run goes on quietly).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class CLIError(Exception):
    """Bad input found by the CLI itself: one line on stderr, exit code 2."""


def as_flags(text: str, settings: Iterable[str]) -> str:
    """`text` with each of `settings` written as its flag: 'weight_decay' -> '--weight-decay'
    (not inside a quoted value or a 'name=value')."""
    for name in settings:
        text = re.sub(rf"(?<![\w'\"=-]){name}(?![\w'\"=])", "--" + name.replace("_", "-"), text)
    return text


def flag_message(e: BaseException) -> str:
    """`e`'s message with the settings it names written as flags (`lr must be > 0` ->
    `--lr must be > 0`), also where the error of a setting is wrapped in another's message
    (a sweep's `config lr=inf: lr must be ...`)."""
    inner: BaseException | None = e
    while inner is not None:
        settings = getattr(inner, "settings", ())  # SettingError's, CifarNotFound's
        if settings:
            return str(e).replace(str(inner), as_flags(str(inner), settings))
        inner = inner.__cause__ or inner.__context__
    return str(e)
