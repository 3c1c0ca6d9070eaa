"""Submissions that look alike, for the instructor (never a change of grade): the same code
once comments, docstrings, names and formatting are removed, and the same wrong gradients,
to the bit, on the salted cases of one run (the same mistake made with the same numbers).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import threading
from collections import Counter
from itertools import combinations
from typing import Any

SIMILAR_FIELDS = ("a", "b", "reason")
_BUILTINS = set(dir(builtins))
_AST_LOCK = threading.Lock()  # CPython 3.11's ast is not safe in threads ("recursion depth
# mismatch" from concurrent ast.parse/unparse); `grade --jobs` digests in its threads


def code_digest(chunks: list[tuple[str, str]]) -> str:
    """SHA-256 (16 hex digits) of the code normalised: parsed, docstrings dropped, every
    name it binds or reads (but builtins and attributes) renamed in order of appearance,
    printed back by `ast.unparse`. "" when a chunk does not parse (or, rarely, when another
    thread's use of ast, e.g. torch.jit's, trips CPython 3.11's shared recursion counter:
    a similarity is advice for the instructor, never worth failing a grade for)."""
    for _ in range(2):
        try:
            return _digest(chunks)
        except SystemError:
            continue
    return ""


def _digest(chunks: list[tuple[str, str]]) -> str:
    with _AST_LOCK:
        try:
            trees = [ast.parse(code) for _, code in chunks]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return ""
        names: dict[str, str] = {}
        try:
            text = "\n".join(ast.unparse(_Rename(names).visit(_strip_docstrings(t)))
                             for t in trees)
        except RecursionError:  # code nested deeper than ast.unparse can print
            return ""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


class _Rename(ast.NodeTransformer):
    """Each name (variables, arguments, functions, classes, import aliases) -> v0, v1 …"""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def _new(self, name: str) -> str:
        if name in _BUILTINS:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._new(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._new(node.name)
        node.returns = None
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 (ast's naming)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self._new(node.name)
        return self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> ast.AST:
        node.asname = self._new(node.asname or node.name.split(".")[0])
        return node


def similar_pairs(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """[{"a", "b", "reason"}] for each pair of entries with the same normalised code or
    the same wrong gradients (compared only within one run: the salt differs between runs)."""
    pairs = []
    shared = Counter(e.get("wrong_digest") for e in entries if e.get("wrong_digest"))
    for x, y in combinations(entries, 2):
        if x.get("code_digest") and x.get("code_digest") == y.get("code_digest"):
            pairs.append({"a": x["id"], "b": y["id"],
                          "reason": "the same code after normalisation"})
        elif x.get("wrong_digest") and x.get("wrong_digest") == y.get("wrong_digest"):
            n = shared[x["wrong_digest"]]  # many: a common mistake more than a copy
            pairs.append({"a": x["id"], "b": y["id"],
                          "reason": "the same wrong gradients on the salted cases"
                                    + (f" ({n} submissions share them)" if n > 2 else "")})
    return pairs
