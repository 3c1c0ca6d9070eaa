"""Figures as PNG files (matplotlib, headless): labelled axes and a legend on every plot."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def load():
    """matplotlib, headless, imported on first use (it costs ~30 MB a process and about half
    a second; call this early to import it while other processes compute)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Save atomically: a temporary PNG beside `path`, then rename."""
    plt = load()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def loss_curves(path: Path, curves: dict[str, dict[str, Sequence[float]]], title: str,
                ylabel: str = "mean loss per sample") -> Path:
    """curves: {label: {"train": [...], "val": [...]}}; train solid, validation dashed."""
    fig, ax = load().subplots(figsize=(7, 4.5))
    for i, (label, series) in enumerate(curves.items()):
        color = f"C{i % 10}"
        for kind, style in (("train", "-"), ("val", "--")):
            values = series.get(kind)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, color=color, marker="o",
                        markersize=3, label=f"{label} ({'validation' if kind == 'val' else kind})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def confusion_matrix(path: Path, matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                     title: str) -> Path:
    fig, ax = load().subplots(figsize=(4.5, 4))
    image = ax.imshow(matrix, cmap="Blues")
    k = len(class_names)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    peak = max(max(row) for row in matrix) or 1
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                    color="white" if matrix[i][j] > peak / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="test images")
    return _save(fig, path)
