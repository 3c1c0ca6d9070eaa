from __future__ import annotations

import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from handgrad.data import load_dataset
from handgrad.report import figures, plots
from handgrad.run.compare import compare_engines
from handgrad.run.config import TrainConfig


@pytest.fixture(scope="module")
def comparison():
    config = TrainConfig(dataset="digits", hidden=(16,), lr=0.05, momentum=0.9, epochs=3)
    return compare_engines(config, load_dataset("digits", seed=0))


def _integer_epochs(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


def test_comparison_figure_has_curves_and_a_log_gap_beside_them(comparison, tmp_path):
    fig = figures.comparison_figure(comparison)
    assert isinstance(fig, Figure)
    loss_ax, gap_ax = fig.axes
    assert gap_ax.get_yscale() == "log" or "identical" in gap_ax.texts[0].get_text()
    assert all(_integer_epochs(ax) for ax in (loss_ax, gap_ax))
    assert loss_ax.get_legend() is None and gap_ax.get_legend() is None  # outside: fig legend
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("manual" in t for t in labels) and any("autograd" in t for t in labels)
    path = plots.save(fig, tmp_path / "sub" / "engines.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["engines.png"]  # no temporary left


def test_identical_engines_say_so_instead_of_an_empty_log_scale():
    gaps = [{"epoch": e, "train_gap": 0.0, "val_gap": 0.0} for e in (1, 2)]
    curves = {"a": {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}}
    fig = plots.engines_figure(curves, gaps, "t")
    assert "identical" in fig.axes[1].texts[0].get_text()
    assert fig.axes[1].get_yscale() == "linear"


def test_run_figure_shows_loss_and_accuracy(comparison):
    fig = figures.run_figure(comparison.manual)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel().startswith("mean loss") and acc_ax.get_ylabel() == "accuracy"
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2  # train and validation
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert _integer_epochs(loss_ax) and _integer_epochs(acc_ax)


def test_confusion_figure_writes_every_count():
    fig = figures.confusion_figure({"confusion_matrix": [[5, 1], [0, 7]],
                                    "class_names": ["3", "8"]})
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "5", "7"]


def test_save_leaves_nothing_when_it_fails(tmp_path):
    fig = plots.curves_figure({"a": {"train_loss": [1.0]}}, "t")
    target = tmp_path / "f.png"
    with pytest.raises(ValueError):
        plots.save(fig, target, dpi=-1)
    assert list(tmp_path.iterdir()) == []


def test_plotting_switches_no_backend_and_imports_no_pyplot():
    """A notebook's inline backend stays as it was."""
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "from handgrad.report import plots\n"
        "fig = plots.curves_figure({'a': {'train_loss': [1.0, 0.5]}}, 't')\n"
        "fig.canvas.print_figure(__import__('io').BytesIO(), format='png')\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
