"""The package's import graph: arrows point down the layers, no cycles, and `import
handgrad` stays light.

The layers, from the bottom: engine < check < data < run < report < cli < the top
(`handgrad/__init__.py`, `api.py`, `__main__.py`); grade sits beside run and, like it, may
import engine, check and data only. A module may import its own subpackage and any layer
below its own, never one above or beside it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "handgrad"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`): imports for type hints only."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _runtime_nodes(node: ast.AST):
    """Every node under `node` but those in `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(node):
        if _type_checking(child):
            yield from (n for stmt in child.orelse for n in [stmt, *_runtime_nodes(stmt)])
            continue
        yield child
        yield from _runtime_nodes(child)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """handgrad modules that `path` imports when it runs, anywhere (function-level imports
    included; imports for type hints only, and the parent packages that every import runs
    first, are not counted)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the module; `from mod import name`, the module
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in modules] or [node.module]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, set(files)) for name, path in files.items()}
    for name in graph:  # a package's __init__ imports are the package's, not its modules'
        graph[name].discard(name)
    return graph


LAYERS = {"engine": 0, "check": 1, "data": 2, "run": 3, "grade": 3, "report": 4, "cli": 5,
          "": 6}  # "": handgrad itself, api and __main__
# TEMPORARY, until the sweep's rewrite (run/sweep/) lands: the sweep's own modules still
# render their results.md through report.tables. Keyed by module; handgrad.run.sweep* only.
SWEEP_ALLOWED = {"handgrad.run.sweep_results": {"handgrad.report.tables"}}


TOP = ("handgrad", "handgrad.api", "handgrad.__main__")


def layer(module: str) -> str:
    """'run' for handgrad.run.train, '' for handgrad, handgrad.api and handgrad.__main__."""
    return "" if module in TOP else module.split(".")[1]


def upward_edges(graph: dict[str, set[str]],
                 allowed: dict[str, set[str]] | None = None) -> list[str]:
    """'a -> b (run -> report)' for every import of a layer above or beside a's own."""
    allowed = allowed or {}
    bad = []
    for a in sorted(graph):
        for b in sorted(graph[a] - allowed.get(a, set())):
            la, lb = layer(a), layer(b)
            if la != lb and LAYERS[la] <= LAYERS[lb]:
                bad.append(f"{a} -> {b} ({la or 'top'} -> {lb or 'top'})")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None (depth-first search with three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_for_type_hints_only_are_not_edges(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from handgrad.a import X\nelse:\n    import handgrad.b\n"
                      "def f():\n    from handgrad.c import Y\n")
    modules = {"handgrad.a", "handgrad.b", "handgrad.c"}
    assert _imports(source, modules) == {"handgrad.b", "handgrad.c"}


def test_the_layer_rule_finds_every_arrow_that_points_up_or_sideways():
    graph = {"handgrad.engine.model": set(), "handgrad.check.gradcheck": {"handgrad.engine.model"},
             "handgrad.run.train": {"handgrad.engine.model", "handgrad.report.tables",
                                    "handgrad.grade.judge"},
             "handgrad.grade.judge": {"handgrad.check.gradcheck"},
             "handgrad.report.tables": {"handgrad.run.train"},
             "handgrad.cli.parser": {"handgrad"}, "handgrad": {"handgrad.cli.parser"},
             "handgrad.api": {"handgrad.run.train"}}
    assert upward_edges(graph) == [
        "handgrad.cli.parser -> handgrad (cli -> top)",
        "handgrad.run.train -> handgrad.grade.judge (run -> grade)",
        "handgrad.run.train -> handgrad.report.tables (run -> report)"]
    allowed = {"handgrad.run.train": {"handgrad.report.tables"}}
    assert upward_edges(graph, allowed) == [
        "handgrad.cli.parser -> handgrad (cli -> top)",
        "handgrad.run.train -> handgrad.grade.judge (run -> grade)"]
    assert [layer(m) for m in ("handgrad", "handgrad.api", "handgrad.__main__", "handgrad.data",
                               "handgrad.grade.sandbox.runner")] == ["", "", "", "data", "grade"]


def test_every_arrow_points_down_the_layers():
    graph = import_graph()
    assert {layer(m) for m in graph} == set(LAYERS), "a module the rule does not place"
    assert all(m.startswith("handgrad.run.sweep") for m in SWEEP_ALLOWED)
    bad = upward_edges(graph, SWEEP_ALLOWED)
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert {"handgrad.cli.main", "handgrad.cli.commands", "handgrad.cli.parser"} <= set(graph)
    assert find_cycle(graph) is None


def test_commands_do_not_import_the_cli_entry_point():
    graph = import_graph()
    assert "handgrad.cli.main" not in graph["handgrad.cli.commands"]
    assert "handgrad.cli.parser" not in graph["handgrad.cli.commands"]


def test_import_handgrad_does_not_load_optuna_or_matplotlib():
    code = ("import sys, handgrad; "
            "print(sorted(m for m in ('optuna', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
