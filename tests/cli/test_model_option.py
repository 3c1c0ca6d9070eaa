"""`--model` of train and compare: the layer networks through the command line."""

from __future__ import annotations

from handgrad.cli.main import main
from handgrad.run.rundir import read_json

DIGITS = ["--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet"]


def test_train_cnn_then_evaluate(tmp_path, capsys):
    out = tmp_path / "cnn"
    assert main(["train", *DIGITS, "--model", "cnn", "--test", "--out", str(out)]) == 0
    assert read_json(out / "config.json")["config"]["model"] == "cnn"
    accuracy = read_json(out / "results.json")["test_accuracy"]
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    assert f"test_accuracy  {accuracy:.4g}" in capsys.readouterr().out


def test_compare_mlp_bn_in_float64(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *DIGITS, "--model", "mlp-bn", "--dtype", "float64",
                 "--out", str(out)]) == 0
    assert read_json(out / "compare.json")["max_gap"] < 1e-12
    assert read_json(out / "manual" / "config.json")["config"]["model"] == "mlp-bn"


def test_an_unknown_model_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", *DIGITS, "--model", "resnet", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'resnet'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
