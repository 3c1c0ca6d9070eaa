"""Evaluate a saved run's weights on its test set, refusing data they were not trained on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from handgrad.data import Dataset
from handgrad.engine.losses import get_loss
from handgrad.run.config import load_data
from handgrad.run.metrics import Evaluation, evaluate
from handgrad.run.rundir import RunDir


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, dataset: str | None = None,
                 classes: Sequence[str] | None = None, device: str | None = None,
                 data: Dataset | None = None) -> Evaluation:
    """Test-set metrics of the run's weights (checked by `RunDir.load_model`); the data must
    be what the run was trained on: the same dataset, classes in the same order, and inputs.
    data: the dataset already loaded (else loaded from the run's config and the overrides)."""
    run = RunDir(run_dir)
    record = run.read_record()
    model = run.load_model()
    changes = {k: v for k, v in (("data_dir", data_dir), ("dataset", dataset),
                                 ("classes", tuple(classes) if classes else None))
               if v is not None}
    config = run.read_config().replace(download=False, device=device or "auto", **changes)
    config.validate()
    data = data or load_data(config)
    trained_on = (record["config"]["dataset"], list(record["class_names"]))
    asked = (data.name, list(data.class_names))
    if trained_on != asked or model.sizes[0] != data.D:
        raise ValueError(
            f"{run.path}: dataset mismatch: the run was trained on {trained_on[0]} "
            f"[{', '.join(trained_on[1])}] ({model.sizes[0]} inputs), asked to evaluate on "
            f"{asked[0]} [{', '.join(asked[1])}] ({data.D} inputs)"
        )
    data = data.to(config.resolved_device())
    model = model.to(config.resolved_device())
    return evaluate(model, data, data.test, get_loss(config.loss), config.torch_dtype)
