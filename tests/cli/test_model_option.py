"""`--model` of train, compare and sweep: the layer networks through the command line."""

from __future__ import annotations

import optuna

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


def test_sweep_mlp_bn_runs_and_each_model_has_its_own_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["sweep", *DIGITS, "--lr", "0.01", "0.05", "--workers", "1", "--storage", url]
    bn, mlp = tmp_path / "bn", tmp_path / "mlp"
    assert main([*args, "--model", "mlp-bn", "--out", str(bn)]) == 0
    summary = read_json(bn / "results.json")
    assert summary["fixed"]["model"] == "mlp-bn" and len(summary["configs"]) == 2
    assert "mlp-bn" in (bn / "results.csv").read_text().splitlines()[1].split(",")
    capsys.readouterr()
    assert main([*args, "--model", "mlp", "--out", str(bn)]) == 2  # never into mlp-bn's
    assert "other settings (model 'mlp-bn' -> 'mlp')" in capsys.readouterr().err
    assert main([*args, "--model", "mlp", "--out", str(mlp)]) == 0
    studies = optuna.get_all_study_summaries(url)
    assert len(studies) == 2 and all(s.n_trials == 2 for s in studies)  # nothing shared
    for out, model in ((bn, "mlp-bn"), (mlp, "mlp")):
        configs = [read_json(p)["config"] for p in out.glob("configs/*/config.json")]
        assert len(configs) == 2 and {c["model"] for c in configs} == {model}
