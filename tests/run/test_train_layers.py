"""`--model cnn` and `--model mlp-bn`: both engines from one start agree in float64; their
run directories save, reload and evaluate like the MLP's; evaluation runs in eval mode."""

from __future__ import annotations

import pytest
import torch

from handgrad.data import load_dataset
from handgrad.engine.model import MLP
from handgrad.engine.sequential import Sequential
from handgrad.run.compare import compare_engines
from handgrad.run.config import TrainConfig
from handgrad.run.evaluate import evaluate_run
from handgrad.run.rundir import RunDir, read_weights
from handgrad.run.train import train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.mark.parametrize("model,optimizer,extra", [
    ("cnn", "sgd", dict(momentum=0.9, weight_decay=0.01)),
    ("mlp-bn", "adam", dict(weight_decay=0.01)),
])
def test_engines_agree_in_float64(digits, model, optimizer, extra):
    config = TrainConfig(dataset="digits", model=model, hidden=(16,), optimizer=optimizer,
                         lr=0.01, epochs=2, batch_size=50, dtype="float64", **extra)
    comparison = compare_engines(config, digits)
    assert comparison.max_gap() <= 1e-12
    assert comparison.max_weight_gap() <= 1e-12
    ours, theirs = comparison.manual.model, comparison.autograd.model
    assert isinstance(ours, Sequential)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(),
                            strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-10, atol=1e-13), name


@pytest.mark.parametrize("model", ["cnn", "mlp-bn"])
def test_run_directory_saves_reloads_and_evaluates(digits, model, tmp_path):
    config = TrainConfig(dataset="digits", model=model, hidden=(16,), lr=0.05, momentum=0.9,
                         epochs=2, batch_size=32)
    result = train(config, digits, out_dir=tmp_path / "run")
    run = RunDir(tmp_path / "run")
    loaded = run.load_model()
    assert run.load_result().config.model == model and isinstance(loaded, Sequential)
    for (name, a), b in zip(result.model.state_dict().items(),
                            loaded.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b), name
    assert read_weights(run.file(run.WEIGHTS))[2]["model"] == model
    again = evaluate_run(tmp_path / "run", data=digits)
    assert (again.loss, again.accuracy, again.confusion) == (
        result.test.loss, result.test.accuracy, result.test.confusion)


def test_evaluation_uses_eval_mode_and_restores_training_mode(digits):
    config = TrainConfig(dataset="digits", model="mlp-bn", hidden=(16,), lr=0.05, epochs=1)
    result = train(config, digits)
    assert result.model.training        # back in training mode after the validation passes
    from handgrad.engine.losses import get_loss
    from handgrad.run.metrics import evaluate

    stats = [b.clone() for b in result.model.buffers()]
    first = evaluate(result.model, digits, digits.val, get_loss("cross_entropy"), torch.float32)
    second = evaluate(result.model, digits, digits.val, get_loss("cross_entropy"),
                      torch.float32)
    assert first == second              # no dropout, running statistics used, not updated
    assert all(torch.equal(a, b) for a, b in zip(stats, result.model.buffers(), strict=True))


def test_the_mlp_stays_the_default_and_its_weights_file_is_unchanged(digits, tmp_path):
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1)
    assert config.model == "mlp"
    result = train(config, digits, out_dir=tmp_path / "mlp")
    assert isinstance(result.model, MLP)
    meta = read_weights(RunDir(tmp_path / "mlp").file("weights.safetensors"))[2]
    assert set(meta) == {"sizes", "activation", "dataset", "classes"}


def test_an_unknown_model_is_refused_naming_it():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose from: mlp, cnn, mlp-bn"):
        TrainConfig(dataset="digits", model="resnet").validate()


def test_a_batch_size_that_leaves_one_sample_for_batch_norm_is_refused_before_writing(
        digits, tmp_path, capsys):
    """256 training digits in batches of 85 end with a batch of 1, which batch norm cannot
    normalise: refused up front (exit 2, nothing written), not a crash after config.json."""
    from handgrad.cli.main import main
    from handgrad.engine.errors import SettingError

    assert len(digits.train) % 85 == 1
    config = TrainConfig(dataset="digits", model="mlp-bn", hidden=(8,), batch_size=85,
                         epochs=1)
    with pytest.raises(SettingError, match="batch_size 85"):
        train(config, digits, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert main(["train", "--dataset", "digits", "--model", "mlp-bn", "--hidden", "8",
                 "--batch-size", "85", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "--batch-size 85" in capsys.readouterr().err and not (tmp_path / "r").exists()
    train(config.replace(model="mlp"), digits)  # no batch norm: a batch of 1 is fine
