"""Gradient health per layer, recorded once an epoch: layers.csv beside metrics.csv (its
rows are defined here, `layer_row` / `read_layers`; RunDir writes and reads the file).

For each layer l with a weight W_l (every norm is the Frobenius norm ‖·‖):

    grad_norm      ‖dL/dW_l‖               the gradient of the epoch's last training step
    weight_norm    ‖W_l‖                   after the epoch's last update
    update_ratio   ‖ΔW_l‖ / ‖W_l‖          ΔW_l = W_l after − W_l before the epoch's last
                                           update, over ‖W_l‖ before it (healthy SGD: ~1e-3)
    dead_fraction  |{units j : a[l]_nj = 0 for every sample n the epoch trained on}| / H_l
                                           ReLU layers only (empty for other activations)

The recorder reads per layer (W, dW, a) through a `probe` (`mlp_probe` for the exercise's
`MLP`), the same quantities in both engines: `W.grad` is the gradient either engine's
optimizer stepped on (the manual engine binds it to its flat buffer). Per step it does one
reduction per ReLU layer on the device (no host sync); the rest is done once an epoch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from handgrad.engine.model import MLP

Tensor = torch.Tensor
LAYER_FIELDS = ("epoch", "layer", "grad_norm", "weight_norm", "update_ratio", "dead_fraction")
MAX_LAYERS_BYTES = 64 << 20


class LayerProbe(NamedTuple):
    """What the recorder reads of one layer: its name, W (H, H_prev), the gradient the last
    update used (None before any), and its output a of the last forward (N, H) when it
    goes through a ReLU (None otherwise: no dead units to count)."""

    name: str
    W: Tensor
    dW: Tensor | None
    relu_out: Tensor | None


Probe = Callable[[], list[LayerProbe]]


@dataclass
class LayerHealth:
    """One row of layers.csv (`LAYER_FIELDS`); `dead_fraction` None for a non-ReLU layer."""

    epoch: int
    layer: str
    grad_norm: float
    weight_norm: float
    update_ratio: float
    dead_fraction: float | None


def mlp_probe(model) -> Probe:
    """The probe of a `handgrad.MLP`: layers "1" … "L", W_l, W_l.grad, a[l] for ReLU layers."""
    relu = [model.act[l].name == "relu" for l in range(1, model.L + 1)]

    def probe() -> list[LayerProbe]:
        return [LayerProbe(str(l), W, W.grad, model.a.get(l) if relu[l - 1] else None)
                for l in range(1, model.L + 1) for W in [model.weight(l)]]

    return probe


def weights_probe(model) -> Probe:
    """The probe of any torch module: each weight of 2 or more dimensions (a Linear's, a
    convolution's) by its parameter name, without dead units (no activation is read)."""
    weights = [(name.removesuffix(".weight"), p) for name, p in model.named_parameters()
               if name.endswith("weight") and p.dim() >= 2]

    def probe() -> list[LayerProbe]:
        return [LayerProbe(name, W, W.grad, None) for name, W in weights]

    return probe


def model_probe(model) -> Probe:
    """`mlp_probe` for the exercise's MLP, `weights_probe` for another model."""
    return mlp_probe(model) if isinstance(model, MLP) else weights_probe(model)


class HealthRecorder:
    """Per epoch: `start_epoch()`, then around each step `before_step(last)` and
    `after_step()`, then `end_epoch(epoch)` -> the epoch's `LayerHealth` rows."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self._alive: dict[str, Tensor] = {}
        self._before: dict[str, Tensor] = {}

    def start_epoch(self) -> None:
        self._alive, self._before = {}, {}

    @torch.no_grad()
    def before_step(self, last: bool) -> None:
        """Keep a copy of every W before the epoch's last update (for `update_ratio`)."""
        if last:
            self._before = {p.name: p.W.detach().clone() for p in self.probe()}

    @torch.no_grad()
    def after_step(self) -> None:
        """alive_j |= max_n a_nj > 0 for each ReLU layer: one reduction, on the device."""
        for p in self.probe():
            if p.relu_out is None:
                continue
            fired = p.relu_out.detach().reshape(-1, p.relu_out.shape[-1]).amax(0) > 0  # (H,)
            seen = self._alive.get(p.name)
            self._alive[p.name] = fired if seen is None else seen.logical_or_(fired)

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> list[LayerHealth]:
        rows = []
        for p in self.probe():
            W = p.W.detach()
            before = self._before.get(p.name)
            start = float(before.norm()) if before is not None else float("nan")
            step = float((W - before).norm()) if before is not None else float("nan")
            alive = self._alive.get(p.name)
            rows.append(LayerHealth(
                epoch, p.name, float(p.dW.norm()) if p.dW is not None else float("nan"),
                float(W.norm()), step / start if start > 0 else float("nan"),
                None if alive is None else 1.0 - float(alive.double().mean())))
        return rows


# ---- layers.csv (RunDir writes and reads the file; its rows are defined here) -------------

def layer_row(h: LayerHealth) -> dict[str, Any]:
    """One row of layers.csv (`dead_fraction` empty for a non-ReLU layer)."""
    row = asdict(h)
    row["dead_fraction"] = "" if h.dead_fraction is None else h.dead_fraction
    return row


def read_layers(path: Path) -> list[LayerHealth]:
    """layers.csv's rows; ValueError naming the file and the first thing wrong."""
    if path.stat().st_size > MAX_LAYERS_BYTES:
        raise ValueError(f"{path}: larger than {MAX_LAYERS_BYTES >> 20} MiB")
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
        missing = [f for f in LAYER_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        return [_layer(row, i, path) for i, row in enumerate(reader, 1)]
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a layers file ({e})") from None


def _layer(row: dict[str, Any], i: int, path: Path) -> LayerHealth:
    try:
        numbers = [float(row[k]) for k in LAYER_FIELDS[2:5]]
        dead = float(row["dead_fraction"]) if row["dead_fraction"] else None
        return LayerHealth(int(row["epoch"]), str(row["layer"]), *numbers, dead)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: row {i} is not numbers: {row}") from None
