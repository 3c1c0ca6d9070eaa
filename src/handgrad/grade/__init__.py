"""Grading a class's hand-written backward passes: submissions in, grades out.

`grader` orchestrates one submission, `judge` judges, `batch` grades a class, `sandbox/`
runs the code confined. The package is also callable, `handgrad.grade(paths, jobs=2)`, as
`handgrad.grade.batch.grade` (the name the README and `handgrad.grade` promised before the
package existed).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from handgrad.grade.batch import grade

        return grade(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
