"""A picture of an MLP's forward and backward pass, as SVG written by handgrad (no system
binary): every layer with its shapes, the forward arrows, and the backward arrows of
dL/da, dL/dz, dL/dW and dL/db, each labelled with the equation it computes (the equations
of docs/backprop.md and engine/backprop.py).

    handgrad.diagram(model)          # in a notebook: drawn inline (`_repr_svg_`)
    handgrad.diagram([64, 32, 10], "relu").save("backward.svg")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handgrad.report.templating import environment
from handgrad.run.files import atomic_write_bytes

COLUMN, TOP, BOTTOM, GRADS = 190, 150, 330, 470  # column width; rows' y of the node centres
NODE_W, NODE_H = 128, 46
LOSS_GRAD = {"sse": "2 (a[L] − y)", "mse": "2 (a[L] − y) / (N C)",
             "cross_entropy": "softmax(a[L]) − y", "bce_with_logits": "σ(a[L]) − y"}
DERIVATIVE = {"relu": "1[z > 0]", "identity": "1", "sigmoid": "σ(z)(1 − σ(z))",
              "tanh": "1 − tanh²(z)", "leaky_relu": "1[z > 0] + α 1[z ≤ 0]",
              "elu": "1[z > 0] + e^z 1[z ≤ 0]", "softplus": "σ(z)"}


@dataclass(frozen=True)
class Node:
    x: float  # centre
    y: float
    name: str
    shape: str
    kind: str  # "forward", "backward", "param", "loss"


@dataclass(frozen=True)
class Arrow:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    kind: str  # "forward" or "backward"
    label_x: float = 0.0
    label_y: float = 0.0


@dataclass
class BackwardDiagram:
    """The nodes and arrows of a network's forward and backward pass; `.svg` draws them."""

    sizes: list[int]
    activation: str = "relu"
    out_activation: str = "identity"
    loss: str = "sse"
    nodes: list[Node] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(int(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be at least two positive widths, got {self.sizes}")
        self.sizes = [int(s) for s in self.sizes]
        self._layout()

    @property
    def L(self) -> int:
        return len(self.sizes) - 1

    @property
    def width(self) -> int:
        return int(COLUMN * (2 * self.L + 2) + 20)

    @property
    def height(self) -> int:
        return GRADS + 90

    def _act(self, l: int) -> str:
        return self.out_activation if l == self.L else self.activation

    def _layout(self) -> None:
        """Columns: a[0], z[1], a[1], …, z[L], a[L], loss; forward on top, dL/d· below."""
        col = lambda i: 20 + COLUMN * i + COLUMN / 2  # noqa: E731
        add_node, add_arrow = self.nodes.append, self.arrows.append
        add_node(Node(col(0), TOP, "x = a[0]", f"(N, {self.sizes[0]})", "forward"))
        for l in range(1, self.L + 1):
            h = self.sizes[l]
            zc, ac = col(2 * l - 1), col(2 * l)
            add_node(Node(zc, TOP, f"z[{l}]", f"(N, {h})", "forward"))
            add_node(Node(ac, TOP, f"a[{l}]", f"(N, {h})", "forward"))
            add_arrow(_across(zc - COLUMN, zc, TOP, f"a[{l - 1}] W{_sub(l)}ᵀ + b{_sub(l)}",
                              "forward", above=True))
            add_arrow(_across(zc, ac, TOP, f"{self._act(l)}(z[{l}])", "forward", above=True))
            add_node(Node(zc, BOTTOM, f"dL/dz[{l}]", f"(N, {h})", "backward"))
            add_node(Node(ac, BOTTOM, f"dL/da[{l}]", f"(N, {h})", "backward"))
            add_arrow(_across(ac, zc, BOTTOM, f"dL/da[{l}] ⊙ {_derivative(self._act(l), l)}",
                              "backward", above=False))
            if l > 1:
                add_arrow(_across(zc, zc - COLUMN, BOTTOM, f"dL/dz[{l}] W{_sub(l)}",
                                  "backward", above=False))
            self._parameter_grads(l, zc)
        lc = col(2 * self.L + 1)
        add_node(Node(lc, TOP, f"L = {self.loss}", "scalar", "loss"))
        add_arrow(_across(col(2 * self.L), lc, TOP, "", "forward", above=True))
        add_arrow(Arrow(lc, TOP + NODE_H / 2, col(2 * self.L) + NODE_W / 2 - 4,
                        BOTTOM - NODE_H / 2, f"{LOSS_GRAD.get(self.loss, 'loss.grad')}",
                        "backward", lc + 6, (TOP + BOTTOM) / 2 + 4))

    def _parameter_grads(self, l: int, zc: float) -> None:
        """dL/dW_l and dL/db_l under dL/dz[l], each with the arrow that forms it."""
        h, h_prev = self.sizes[l], self.sizes[l - 1]
        for dx, name, shape, eq in ((-70, f"dL/dW{_sub(l)}", f"({h}, {h_prev})",
                                     f"dL/dz[{l}]ᵀ a[{l - 1}]"),
                                    (70, f"dL/db{_sub(l)}", f"({h},)", "Σₙ dL/dz[l]ₙ"
                                     .replace("[l]", f"[{l}]"))):
            x = zc + dx
            self.nodes.append(Node(x, GRADS, name, shape, "param"))
            self.arrows.append(Arrow(zc + dx / 3, BOTTOM + NODE_H / 2, x, GRADS - NODE_H / 2,
                                     eq, "backward", x + (4 if dx > 0 else -4),
                                     (BOTTOM + GRADS) / 2 + (10 if dx > 0 else -6)))

    @property
    def svg(self) -> str:
        return environment().get_template("diagram.svg.j2").render(d=self, node_w=NODE_W,
                                                                   node_h=NODE_H)

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path) -> Path:
        """Write the SVG to `path` (atomically); returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, self.svg.encode("utf-8"))
        return path


def diagram(model_or_sizes, activation: str | None = None, out_activation: str | None = None,
            loss: str = "sse") -> BackwardDiagram:
    """The diagram of a `handgrad.MLP` (its sizes and activations) or of `sizes`."""
    sizes = getattr(model_or_sizes, "sizes", model_or_sizes)
    if not isinstance(sizes, Sequence) or isinstance(sizes, str):
        raise TypeError(f"expected a handgrad.MLP or a list of widths, got "
                        f"{type(model_or_sizes).__name__}")
    return BackwardDiagram(list(sizes),
                           activation or getattr(model_or_sizes, "activation", "relu"),
                           out_activation or getattr(model_or_sizes, "out_activation",
                                                     "identity"), loss)


def _across(x_from: float, x_to: float, y: float, label: str, kind: str,
            above: bool) -> Arrow:
    """A horizontal arrow between the nodes centred at x_from and x_to, labelled over it
    (`above`) or under it."""
    sign = 1 if x_to > x_from else -1
    return Arrow(x_from + sign * NODE_W / 2, y, x_to - sign * (NODE_W / 2 + 2), y, label,
                 kind, (x_from + x_to) / 2, y - NODE_H / 2 - 8 if above else y + NODE_H / 2 + 16)


def _derivative(act: str, l: int) -> str:
    return f"f′(z[{l}]) = {DERIVATIVE[act]}" if act in DERIVATIVE else f"f′(z[{l}])"


def _sub(l: int) -> str:
    return str(l).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
