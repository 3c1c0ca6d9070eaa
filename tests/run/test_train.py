from __future__ import annotations

import itertools
import json

import pytest
import torch

from handgrad.run.compare import compare_engines
from handgrad.run.config import TrainConfig
from handgrad.run.rundir import read_json
from handgrad.run.train import train


@pytest.mark.parametrize("engine", ["manual", "autograd"])
def test_exercise_on_real_cifar_reaches_75_percent(cifar_root, engine, tmp_path):
    config = TrainConfig(data_dir=str(cifar_root), engine=engine, epochs=2, lr=0.01,
                         momentum=0.9)
    result = train(config, out_dir=tmp_path / engine)
    assert result.status == "completed"
    assert result.test.accuracy >= 0.75, result.test
    assert sum(map(sum, result.test.confusion)) == 2000
    saved = read_json(tmp_path / engine / "results.json")
    assert saved["test_accuracy"] == result.test.accuracy


COMBOS = list(itertools.product(["manual", "autograd"], ["sgd", "adam", "adamw"],
                                ["sse", "mse", "cross_entropy", "bce_with_logits"]))


@pytest.mark.parametrize("engine,optimizer,loss", COMBOS)
def test_every_engine_optimizer_loss_trains_and_evaluates(digits, engine, optimizer, loss):
    config = TrainConfig(dataset="digits", hidden=(16,), engine=engine, optimizer=optimizer,
                         loss=loss, lr=0.01, epochs=2, batch_size=32)
    result = train(config, digits)
    assert result.status == "completed" and len(result.history) == 2
    assert 0.0 <= result.test.accuracy <= 1.0


@pytest.mark.parametrize("optimizer,extra", [
    ("sgd", dict(momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("adam", dict(weight_decay=0.01)),
    ("adamw", dict()),
])
def test_engines_agree_in_float64(digits, optimizer, extra):
    config = TrainConfig(dataset="digits", hidden=(32, 16), optimizer=optimizer, lr=0.01,
                         epochs=3, batch_size=50, dtype="float64", **extra)
    comparison = compare_engines(config, digits)
    assert comparison.max_gap() <= 1e-9
    manual = dict(comparison.manual.model.state_dict())
    for name, value in comparison.autograd.model.state_dict().items():
        assert torch.allclose(manual[name], value, rtol=1e-9, atol=1e-12), name


def test_float32_gap_is_reported(digits, tmp_path):
    config = TrainConfig(dataset="digits", hidden=(16,), lr=0.05, momentum=0.9, epochs=3)
    comparison = compare_engines(config, digits, out_dir=tmp_path)
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["dtype"] == "float32" and saved["max_gap"] == comparison.max_gap()
    assert comparison.max_gap() < 1e-4
    assert not (tmp_path / "engines.png").exists()  # the library returns data; callers draw


def test_diverging_run_leaves_a_consistent_run_dir(digits, tmp_path):
    config = TrainConfig(dataset="digits", hidden=(16,), lr=50.0, loss="sse", epochs=3)
    result = train(config, digits, out_dir=tmp_path)
    assert result.status == "diverged"
    assert "epoch" in result.message and "lower learning rate" in result.message
    saved = read_json(tmp_path / "results.json")
    assert saved["status"] == "diverged" and saved["test_accuracy"] is None
    assert (tmp_path / "config.json").exists() and (tmp_path / "metrics.csv").exists()
    assert not (tmp_path / "weights.safetensors").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_last_short_batch_is_weighted_by_its_size(digits):
    # 256 training images, batch 100: batches of 100, 100, 56. With lr tiny the model barely
    # moves, so the epoch mean must equal the full-split loss computed in one pass.
    config = TrainConfig(dataset="digits", hidden=(8,), lr=1e-12, epochs=1, batch_size=100,
                         dtype="float64")
    result = train(config, digits)
    from handgrad.engine.losses import get_loss
    from handgrad.run.metrics import evaluate

    full = evaluate(result.model, digits, digits.train, get_loss("cross_entropy"), torch.float64)
    assert result.history[0].train_loss == pytest.approx(full.loss, rel=1e-9)


def test_metrics_csv_records_each_epochs_training_seconds(digits, tmp_path):
    import csv

    config = TrainConfig(dataset="digits", hidden=(8,), epochs=2, batch_size=64)
    result = train(config, digits, out_dir=tmp_path, evaluate_test=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [float(r["seconds"]) for r in rows] == pytest.approx(
        [m.seconds for m in result.history], rel=1e-6)
    assert all(0 < float(r["seconds"]) < 60 for r in rows)
