"""Reload a run directory and evaluate its weights, refusing ones that do not match."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from handgrad.data import Dataset
from handgrad.engine.losses import get_loss
from handgrad.engine.model import MLP
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.metrics import Evaluation, evaluate
from handgrad.run.rundir import CONFIG, METRICS, RESULTS, WEIGHTS, load_weights, read_json
from handgrad.run.train import EpochMetrics, RunResult


def load_run_model(run_dir: Path) -> tuple[TrainConfig, dict, MLP]:
    """(config, config.json record, model with the saved weights) of a completed run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    record = read_json(run_dir / CONFIG)
    results = read_json(run_dir / RESULTS) if (run_dir / RESULTS).exists() else {}
    if results.get("status") not in (None, "completed"):
        raise ValueError(f"{run_dir}: run status is {results['status']!r}; it has no weights "
                         "to evaluate")
    config = TrainConfig.from_dict(record["config"])
    sizes = [int(s) for s in record["sizes"]]
    state = load_weights(run_dir / WEIGHTS)
    model = MLP(sizes, activation=config.activation, dtype=config.torch_dtype)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise ValueError(f"{run_dir / WEIGHTS}: architecture mismatch: config.json says sizes "
                         f"{sizes} ({_fmt(expected)}), the checkpoint has {_fmt(found)}")
    model.load_state_dict({k: v.to(config.torch_dtype) for k, v in state.items()})
    return config, record, model


def evaluate_run(run_dir: Path, data_dir: str | None = None, dataset: str | None = None,
                 classes: Sequence[str] | None = None, device: str | None = None,
                 data: Dataset | None = None) -> Evaluation:
    """Test-set metrics of the run's weights; the data must be what the run was trained on.
    data: the dataset already loaded (else loaded from the run's config and the overrides)."""
    config, record, model = load_run_model(run_dir)
    changes = {k: v for k, v in (("data_dir", data_dir), ("dataset", dataset),
                                 ("classes", tuple(classes) if classes else None),
                                 ("device", device)) if v is not None}
    config = config.replace(download=False, **changes).validate()
    data = data or load_data(config)
    trained_on = (record["config"]["dataset"], list(record["class_names"]))
    asked = (data.name, list(data.class_names))
    if trained_on != asked or model.sizes[0] != data.D:
        raise ValueError(
            f"{run_dir}: dataset mismatch: the run was trained on {trained_on[0]} "
            f"[{', '.join(trained_on[1])}] ({model.sizes[0]} inputs), asked to evaluate on "
            f"{asked[0]} [{', '.join(asked[1])}] ({data.D} inputs)"
        )
    data = data.to(config.resolved_device())
    model = model.to(config.resolved_device())
    return evaluate(model, data, data.test, get_loss(config.loss), config.torch_dtype)


def load_run_result(run_dir: Path) -> RunResult:
    """A finished run as a RunResult (config, per-epoch history, status), without weights."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / CONFIG)
    results = read_json(run_dir / RESULTS)
    with open(run_dir / METRICS) as f:
        history = [EpochMetrics(int(r["epoch"]), float(r["train_loss"]),
                                float(r["train_accuracy"]), float(r["val_loss"]),
                                float(r["val_accuracy"]), float("nan"))
                   for r in csv.DictReader(f)]
    return RunResult(TrainConfig.from_dict(record["config"]), tuple(record["class_names"]),
                     results["status"], results.get("message", ""), history)


def _fmt(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in sorted(shapes.items()))
