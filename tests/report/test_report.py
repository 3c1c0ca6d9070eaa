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


def test_reproduce_progress_lines_and_report_are_numbered_alike(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--dataset", "digits", "--epochs", "3", "--workers", "1",
                 "--select-by", "val_accuracy", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()  # piped: one line per phase and config
    progress = lines[:lines.index(next(x for x in lines if x.startswith("== 1.")))]
    assert sum(x.startswith("3. sweep [") for x in progress) == 4
    assert [x for x in progress if x.startswith("3. sweep [4/4] ")]
    for n, what in ((1, "gradient check: pass"), (2, "engines compared"), (3, "sweep: selected"),
                    (4, "selected config on the test set: loss")):
        assert any(x.startswith(f"{n}. {what}") for x in progress), (n, progress)
    report = (out / "report.md").read_text()
    titles = [x for x in report.splitlines() if x.startswith("## ")]
    assert [t.split(".")[0] for t in titles] == ["## 1", "## 2", "## 3", "## 4"]
    assert titles[1].startswith("## 2. Hand-written vs autograd")
    assert titles[2].startswith("## 3. Sweep, selected by val_accuracy")
    console = [x for x in lines if x.startswith("== ")]
    assert [c[3:5] for c in console] == ["1.", "2.", "3.", "4."]
    selected = next(x for x in report.splitlines() if x.startswith("Selected:"))
    assert "(validation accuracy " in selected


def test_reproduce_through_the_python_api_prints_nothing(tmp_path, capsys):
    import handgrad
    from handgrad.run.reproduce import ReproduceResult
    from handgrad.run.sweep_spec import SweepSpec
    from handgrad.run.train import TrainConfig

    base = TrainConfig(dataset="digits", hidden=(16,), epochs=2)
    spec = SweepSpec(base, grid={"lr": [0.01, 0.05], "momentum": [0.9]})
    result = handgrad.reproduce(spec, out=tmp_path / "r", workers=1)
    assert capsys.readouterr() == ("", "")
    assert isinstance(result, ReproduceResult) and result.passed
    assert result.report_path.is_file() and set(result.figures) == {"sweep", "engines",
                                                                     "confusion", "health"}
    assert (result.out / "report.html").is_file()
    lines = str(result).splitlines()
    assert len(lines) == 6 and lines[1] == "1. gradient check: pass (4 tensors, float64)"
    assert lines[3].startswith("3. sweep of 2 configs: selected lr=")
    assert lines[4].startswith("4. test set, once: loss ")
    assert lines[5] == f"report: {result.report_path}"
    assert len(repr(result)) < 200 and "passed=True" in repr(result)
    page = result._repr_html_()
    assert page.count("<table>") == 1 and page.count("<li>") == 4
