"""Which files and folders are submissions, and which file of a student's folder is graded.

One submission is a .py or .ipynb file, or a student's folder (the file in it that defines
the function is graded; the folder's other modules are importable). A folder given on the
command line is a folder of submissions: each file and each sub-folder in it is one. Hidden
files, caches and symbolic links (which may point anywhere) are not submissions.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from handgrad.grade.submission import SUFFIXES, SubmissionError, read_source

SKIP = ("__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path | None  # the file graded; None when a folder has no file defining the function
    files: tuple[Path, ...]  # what the content hash covers
    folder: bool = False  # a student's folder: its other modules are importable


def find_submissions(paths: Sequence[str | Path], function: str) -> list[Submission]:
    """The submissions in `paths` (files, folders of submissions); SubmissionError for a
    path that does not exist or holds none."""
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            if path.suffix not in SUFFIXES:
                raise SubmissionError(f"{path}: a submission is a .py file or a .ipynb notebook")
            found.append(Submission(path.stem, path, (path,)))
        elif path.is_dir():
            inside = [student_folder(p, function) if p.is_dir() else Submission(p.stem, p, (p,))
                      for p in sorted(path.iterdir()) if _counts(p)]
            if not inside:
                raise SubmissionError(f"{path}: no .py or .ipynb submission in this folder")
            found += inside
        else:
            raise SubmissionError(f"{path}: no such file or folder")
    return _unique_ids(found)


def _counts(p: Path) -> bool:
    hidden = p.name.startswith(".") or p.name in SKIP or p.is_symlink()  # may point anywhere
    return not hidden and (p.is_dir() or (p.is_file() and p.suffix in SUFFIXES))  # no FIFO


CONVENTIONAL = ("solution", "submission", "main")


def student_folder(p: Path, function: str) -> Submission:
    """A student's folder: graded through its top-level .py or .ipynb that defines
    `function` (path None when none does); the hash covers every file in it. A file with a
    real `def function` comes first (a comment or an assignment does not count as much),
    then a conventional name (solution.py …), then the name's order."""
    files = tuple(sorted(f for f in p.rglob("*") if f.is_file() and not f.is_symlink()
                         and not any(part in SKIP for part in f.parts)))
    ranked = sorted((rank, f.stem not in (*CONVENTIONAL, function), f.name, f)
                    for f in files if f.suffix in SUFFIXES and f.parent == p
                    for rank in [_defines(f, function)] if rank < 2)
    return Submission(p.name, ranked[0][3] if ranked else None, files, folder=True)


def among_submissions(path: Path, function: str) -> bool:
    """Whether the file `path` sits in a folder of submissions: another top-level file
    there defines `function` too (it is then graded alone, its neighbours not visible)."""
    here = path.resolve()
    return any(p != here and p.suffix in SUFFIXES and _defines(p, function) == 0
               for p in here.parent.iterdir() if p.is_file())


def _defines(path: Path, function: str) -> int:
    """0: a top-level `def function`; 1: `function = …` at top level; 2: neither."""
    try:
        chunks = read_source(path)
    except SubmissionError:
        return 2
    best = 2
    for _, code in chunks:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
                return 0
            targets = getattr(node, "targets", [getattr(node, "target", None)])
            if any(isinstance(t, ast.Name) and t.id == function for t in targets):
                best = 1
    return best


def _unique_ids(subs: list[Submission]) -> list[Submission]:
    seen: dict[str, int] = {}
    out = []
    for s in subs:
        n = seen[s.id] = seen.get(s.id, 0) + 1
        out.append(s if n == 1 else Submission(f"{s.id}-{n}", s.path, s.files, s.folder))
    return out
