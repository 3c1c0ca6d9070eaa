"""examples/exercise.ipynb, run top to bottom in a real Jupyter kernel as a student would."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "exercise.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_in_a_kernel(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("HANDGRAD_DATASET", raising=False)
    # tiny networks: one thread is fastest, and it spares a busy machine OpenMP's contention
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on error
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # engines, sweep, confusion, momentum, weight decay, health, run
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs)  # handgrad.diagram
    text = "".join(o.get("text", "") for o in outputs)
    assert "FAIL (score" in text and "batch_sum" in text  # the bug, caught and named
    assert "PASS: all" in text
    assert "[4/4]" in text and "the one test evaluation" in text
    assert (tmp_path / "runs" / "exercise" / "one-run" / "metrics.csv").is_file()
