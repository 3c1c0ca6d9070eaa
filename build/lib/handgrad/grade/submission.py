"""A submission as a student hands it in: a `.py` file or a Jupyter notebook.

`read_source` turns it into chunks of Python, each with the label its errors are reported
under: the file's name, or "name.ipynb, cell 3" for each code cell of a notebook (in order;
IPython magics and shell lines are skipped, `%%` cells other than Python ones dropped).
`load_function` runs the chunks as one module, with the submission's folder importable, and
returns the function.
"""

from __future__ import annotations

import io
import linecache
import re
import sys
import tokenize
import traceback
import types
from collections.abc import Callable
from pathlib import Path

SUFFIXES = (".py", ".ipynb")
PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")
_SHELL_ASSIGNMENT = re.compile(r"^\s*[\w.,\s]+=\s*[!%]")


class SubmissionError(Exception):
    """The submission cannot be run: no such file, it fails to load, or no such function."""


class NoFunctionError(SubmissionError):
    """The submission loads but defines no function of the name asked for."""


def read_source(path: Path) -> list[tuple[str, str]]:
    """[(label, code)] of a .py file or of a notebook's code cells, in order."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    if path.suffix not in SUFFIXES:
        raise SubmissionError(f"{path}: a submission is a .py file or a .ipynb notebook")
    if path.suffix == ".py":
        return [(path.name, path.read_text(encoding="utf-8", errors="replace"))]
    import nbformat

    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as e:  # nbformat raises several kinds on a file that is not a notebook
        raise SubmissionError(f"{path}: not a readable notebook ({_one_line(e)})") from None
    chunks = []
    for i, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") == "code":
            code = _python_lines(cell.get("source", ""))
            if code.strip():
                chunks.append((f"{path.name}, cell {i}", code))
    return chunks


def _python_lines(source: str) -> str:
    """The cell without magics and shell lines (blanked, so that line numbers stay)."""
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        if not first.startswith(PYTHON_CELL_MAGICS):
            return ""
        lines[0] = ""
    kept: list[str] = []
    for line in lines:
        magic = line.lstrip().startswith(("%", "!")) or _SHELL_ASSIGNMENT.match(line)
        kept.append("" if magic and not _inside_statement(kept) else line)
    return "\n".join(kept) + "\n"


def _inside_statement(lines: list[str]) -> bool:
    """Whether the next line continues a statement of `lines` (an open bracket or string,
    a trailing backslash): there a leading % or ! is Python, not a magic."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            pass
    except tokenize.TokenError:
        return True
    except SyntaxError:  # an unrelated error in the cell: Python reports it when it runs
        return False
    return False


def load_function(chunks: list[tuple[str, str]], name: str, folder: Path | None,
                  module_name: str = "submission") -> Callable:
    """Run the chunks as the module `module_name` (with `folder` first on sys.path) and
    return its callable `name`."""
    module = types.ModuleType(module_name)
    module.__file__ = chunks[0][0] if chunks else module_name
    if any(", cell " in label for label, _ in chunks):  # a notebook's cells
        module.__dict__["display"] = _display  # IPython's, which notebooks call freely
    sys.modules[module_name] = module
    if folder is not None:  # last: a student's numpy.py must not shadow numpy for others
        sys.path.append(str(folder))
    for label, code in chunks:
        linecache.cache[label] = (len(code), None, code.splitlines(True), label)
        try:
            exec(compile(code, label, "exec"), module.__dict__)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # the student's code: report their error and line
            raise SubmissionError(f"loading the submission failed: {user_error(e)}") from None
    fn = module.__dict__.get(name)
    if not callable(fn):
        found = [n for n, v in module.__dict__.items() if isinstance(v, types.FunctionType)
                 and not n.startswith("_") and v.__module__ == module_name]
        raise NoFunctionError(f"the submission has no function {name!r}; it defines: "
                              f"{', '.join(found) or 'no function'}")
    return fn


def _display(*objects: object, **kwargs: object) -> None:
    print(*objects)


def user_error(e: BaseException, source: str | None = None) -> str:
    """'ErrorType: message (file, line N: source)' at the deepest frame of the student's
    code: a frame outside Python's and torch's own files."""
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}, line {e.lineno}: {(e.text or '').strip()})"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if _is_users(f.filename, source)]
    where = ""
    if frames:
        f = frames[-1]
        line = f.line or linecache.getline(f.filename, f.lineno).strip()
        where = f" ({Path(f.filename).name if '/' in f.filename else f.filename}, "
        where += f"line {f.lineno}: {line})"
    return f"{type(e).__name__}: {_one_line(e)}{where}"


def _is_users(filename: str, source: str | None) -> bool:
    if source is not None:
        return filename == source
    return not any(part in filename for part in ("/site-packages/", "/lib/python", "/handgrad/"))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:500] or type(e).__name__
