"""The backward-pass diagram (report/diagram.py): one node per quantity with its shape, one
arrow per equation of docs/backprop.md, valid SVG, and the exercise's figure in docs/."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import handgrad
from handgrad.report.diagram import diagram

DOCS = Path(__file__).resolve().parents[2] / "docs"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("sizes,activation", [([5, 3], "tanh"), ([64, 32, 16, 10], "relu"),
                                              ([3072, 512, 128, 32, 2], "sigmoid")])
def test_every_layer_has_its_shapes_and_equations(sizes, activation):
    d = handgrad.diagram(handgrad.MLP(sizes, activation=activation))
    L = len(sizes) - 1
    names = {n.name: n.shape for n in d.nodes}
    for l in range(1, L + 1):
        sub = "₀₁₂₃₄₅₆₇₈₉"[l]
        assert names[f"z[{l}]"] == names[f"dL/dz[{l}]"] == f"(N, {sizes[l]})"
        assert names[f"dL/dW{sub}"] == f"({sizes[l]}, {sizes[l - 1]})"
        assert names[f"dL/db{sub}"] == f"({sizes[l]},)"
    labels = [a.label for a in d.arrows if a.kind == "backward"]
    # dL/da[L]; per layer dL/dz, dL/dW, dL/db; dL/da[l-1] for l > 1 (layer 1 needs none)
    assert len(labels) == 1 + 3 * L + (L - 1)
    assert f"dL/dz[{L}] W{'₀₁₂₃₄₅₆₇₈₉'[L]}" in labels or L == 1
    assert "dL/dz[1]ᵀ a[0]" in labels and "Σₙ dL/dz[1]ₙ" in labels
    root = ET.fromstring(d._repr_svg_())
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f".//{SVG}line")) == len(d.arrows)


def test_refuses_what_is_not_a_network():
    with pytest.raises(TypeError, match="expected a handgrad.MLP"):
        diagram(3)
    with pytest.raises(ValueError, match="sizes must be"):
        diagram([4])


def test_docs_figure_is_the_exercise_network_drawn_now():
    """docs/figures/backward.svg is what handgrad draws today (regenerate it with
    docs/make_figures.py)."""
    drawn = diagram([3072, 512, 128, 32, 2], "relu", loss="cross_entropy").svg
    assert (DOCS / "figures" / "backward.svg").read_text() == drawn
    assert "figures/backward.svg" in (DOCS / "backprop.md").read_text()
