from __future__ import annotations

import pytest

from handgrad.cli.main import main
from handgrad.run.rundir import read_json


@pytest.mark.parametrize("workers", ["1", "2"])  # in this process; worker processes
def test_reproduce_on_digits_writes_every_artefact(tmp_path, capsys, workers):
    out = tmp_path / "rep"
    assert main(["reproduce", "--dataset", "digits", "--epochs", "15", "--quiet",
                 "--workers", workers, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1. gradient check" in text and "largest gap" in text and "Selected" in text
    for name in ("report.md", "results.json", "sweep_curves.png", "compare/engines.png",
                 "confusion.png", "sweep/results.md", "sweep/results.csv", "sweep/results.json"):
        assert (out / name).stat().st_size > 0, name
    results = read_json(out / "results.json")
    assert results["gradcheck"]["passed"] and len(results["configs"]) == 4
    assert {(c["lr"], c["weight_decay"], c["momentum"]) for c in results["configs"]} == {
        (0.001, 0.0, 0.0), (0.01, 0.0, 0.0), (0.001, 0.1, 0.9), (0.01, 0.0, 0.9)}
    assert results["engines"]["max_gap"] < 1e-4
    assert results["engines"]["float64_max_loss_gap"] <= 1e-12
    assert results["engines"]["float64_max_weight_gap"] <= 1e-12
    # the comparison trained autograd only: its manual run is the sweep's
    assert {p.name for p in (out / "compare").iterdir()} == {"autograd", "compare.json",
                                                             "engines.png"}
    report = (out / "report.md").read_text()
    assert "handgrad reproduce --dataset digits" in report
    for heading in ("Gradient check", "Hand-written vs autograd", "Sweep, selected by val_loss",
                    "Selected config on the test set"):
        assert heading in report
    assert "![confusion matrix](confusion.png)" in report
    assert "![engines](compare/engines.png)" in report


def test_reproduce_on_real_cifar_selects_the_lowest_validation_loss(cifar_root, tmp_path):
    out = tmp_path / "rep"
    assert main(["reproduce", "--data-dir", str(cifar_root), "--epochs", "1", "--quiet",
                 "--out", str(out)]) == 0
    results = read_json(out / "results.json")
    best = min(results["configs"], key=lambda c: c["val_loss"])
    selected = results["selected"]
    assert selected["run_dir"] == best["run_dir"]
    assert results["class_names"] == ["airplane", "automobile"]
    assert results["engines"]["float64_max_weight_gap"] <= 1e-12
    assert sum(map(sum, selected["confusion_matrix"])) == 2000
    report = (out / "report.md").read_text()
    assert f"{selected['test_accuracy']:.4g}" in report


def test_reproduce_twice_gives_the_same_numbers(tmp_path):
    def numbers(out):
        assert main(["reproduce", "--dataset", "digits", "--epochs", "5", "--quiet",
                     "--workers", "2", "--out", str(out)]) == 0
        r = read_json(out / "results.json")
        return (r["engines"], [(c["train_loss"], c["val_loss"]) for c in r["configs"]],
                r["selected"]["test_loss"])

    assert numbers(tmp_path / "a") == numbers(tmp_path / "b")
    # a rerun in place (a finished sweep: no worker trains) reports the same, too
    assert numbers(tmp_path / "a") == numbers(tmp_path / "b")
