"""examples/layers/batchnorm.ipynb, run top to bottom in a real Jupyter kernel: a student's
batchnorm backward, its classic mistake diagnosed by handgrad.check_layers, then fixed
(stored without outputs: tests/e2e/test_notebook.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "layers" / "batchnorm.ipynb"


@pytest.mark.slow
def test_notebook_shows_the_mistake_named_then_the_fix_passing(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on error
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for o in outputs)
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "FAIL (score 5/20): batchnorm_backward" in text and "no_mean_path" in text
    assert "<table>" in html and "no_mean_path" in html
    assert "hint:" in text and "dL/dμ" in text  # what is missing, said
    assert "PASS: all 2 functions match autograd (score 20/20)" in text
