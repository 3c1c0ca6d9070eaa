"""docs/backprop.md quotes code lines: each must still be in the file it names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_quoted_line_is_in_the_named_source_file():
    text = (ROOT / "docs" / "backprop.md").read_text()
    checked = 0
    source = None
    for block in re.split(r"(```python\n.*?```)", text, flags=re.S):
        if block.startswith("```python"):
            assert source is not None, "a code block before any source file is named"
            code = (ROOT / source).read_text()
            for line in block.splitlines()[1:-1]:
                assert line in code.splitlines(), f"{source}: {line!r} not found"
                checked += 1
        else:
            named = re.findall(r"`(src/handgrad/[\w/]+\.py)`", block)
            source = named[-1] if named else source
    assert checked >= 9


def test_figures_exist():
    for name in ("momentum.png", "weight_decay.png", "weight_decay_loss.png"):
        assert (ROOT / "docs" / "figures" / name).stat().st_size > 10_000


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.dL_dw[1].shape == (512, 3072)
    assert model.fc["1"].weight.grad is not None


def test_readme_holds_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
