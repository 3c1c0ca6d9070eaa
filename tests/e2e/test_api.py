"""The public API: `import handgrad` then train, compare, sweep, reproduce, load_run, with
config objects or plain keywords; results print short; the README's examples run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import handgrad
from handgrad.run.config import TrainConfig
from handgrad.run.rundir import read_json
from handgrad.run.sweep_spec import SweepSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(dataset="digits", hidden=[4], epochs=1)
PUBLIC = ["MLP", "backpropagation", "optim", "gradcheck", "check_backprop", "train",
          "compare", "sweep", "reproduce", "load_run"]


def test_every_public_name_is_at_the_top_level_and_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The Python API")[1].split("\n## ")[0]
    for name in PUBLIC:
        assert getattr(handgrad, name) is not None and name in handgrad.__all__
        assert f"handgrad.{name}" in section, name
    assert set(PUBLIC) <= set(dir(handgrad))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        handgrad.nope  # noqa: B018


def test_import_handgrad_loads_the_run_layer_only_when_used():
    code = ("import sys, handgrad; print('handgrad.api' in sys.modules, "
            "'handgrad.run.sweep' in sys.modules); handgrad.train; "
            "print('handgrad.api' in sys.modules, 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "True", "False"]


def test_readme_whole_run_examples_run(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The Python API")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    code = next(b for b in blocks if "handgrad.sweep(" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["run"].status == "completed"
    assert len(namespace["again"].history) == 3
    assert len(namespace["summary"]["configs"]) == 4
    assert namespace["result"].passed
    assert (tmp_path / "runs" / "api-exercise" / "report.md").exists()


def test_keywords_and_config_objects_give_the_same_run(tmp_path):
    by_keywords = handgrad.train(**TINY, lr=0.05, out=tmp_path / "a", test=True)
    by_config = handgrad.train(TrainConfig(dataset="digits", hidden=(4,), epochs=1, lr=0.05),
                               out=tmp_path / "b", test=True)
    updated = handgrad.train(TrainConfig(dataset="digits", hidden=(4,), epochs=1), lr=0.05,
                             test=True)
    assert by_keywords.summary() == by_config.summary() == updated.summary()
    assert read_json(tmp_path / "a" / "config.json")["config"]["lr"] == 0.05
    loaded = handgrad.load_run(tmp_path / "a")
    assert loaded.config == by_keywords.config
    assert [m.val_loss for m in loaded.history] == [m.val_loss for m in by_keywords.history]
    assert loaded.test.accuracy == by_keywords.test.accuracy
    for a, b in zip(loaded.model.parameters(), by_keywords.model.parameters(), strict=True):
        assert a.dtype == b.dtype and bool((a == b).all())


@pytest.mark.parametrize("settings,error,message", [
    (dict(lr=float("inf")), ValueError, "lr must be a finite number, got inf"),
    (dict(lr="abc"), ValueError, "lr must be a finite number, got 'abc'"),
    (dict(epochs=0), ValueError, "epochs must be >= 1, got 0"),
    (dict(epochs=1.5), ValueError, "epochs must be an integer, got 1.5"),
    (dict(seed=2**64), ValueError, "seed must be an integer in [0, 4294967295]"),
    (dict(seed=True), ValueError, "seed must be an integer"),
    (dict(hidden=5), ValueError, "hidden must be widths"),
    (dict(nesterov="yes"), ValueError, "nesterov must be true or false"),
    (dict(optimizer="adam", momentum=0.9), ValueError, "momentum applies to sgd only"),
    (dict(lrr=0.1), TypeError, "unknown setting 'lrr'"),
    (dict(lr=1e39), ValueError, "lr 1e+39 is beyond the largest float32"),
    (dict(weight_decay=1e39), ValueError, "weight_decay 1e+39 is beyond the largest float32"),
    (dict(hidden=(True, 8)), ValueError, "hidden must be an integer, got True"),
    (dict(batch_size=True), ValueError, "batch_size must be an integer, got True"),
    (dict(epochs=True), ValueError, "epochs must be an integer, got True"),
    (dict(extra={"x": object()}), ValueError, "extra must be a dict of JSON values"),
    (dict(extra={"x": float("nan")}), ValueError, "extra must be a dict of JSON values"),
])
def test_bad_settings_raise_before_anything_is_written(tmp_path, settings, error, message):
    out = tmp_path / "run"
    with pytest.raises(error, match=re.escape(message)) as raised:
        handgrad.train(**{**TINY, **settings}, out=out)
    assert "--" not in str(raised.value)  # the library names settings; the CLI, flags
    assert not out.exists()


def test_compare_takes_no_engine():
    with pytest.raises(TypeError, match="compare trains both engines"):
        handgrad.compare(**TINY, engine="autograd")


def test_sweep_takes_keywords_lists_a_base_config_or_a_spec(tmp_path):
    summary = handgrad.sweep(**{**TINY, "hidden": [[4], [3, 2]]}, lr=[0.01, 0.1],
                             optimizer="adam", batch_size=16, out=tmp_path / "s")
    rows = summary["configs"]
    assert {(r["lr"], r["hidden"]) for r in rows} == {(0.01, "4"), (0.1, "4"),
                                                      (0.01, "3,2"), (0.1, "3,2")}
    assert {(r["optimizer"], r["batch_size"]) for r in rows} == {("adam", 16)}
    for run_dir in (tmp_path / "s" / "configs").iterdir():
        config = read_json(run_dir / "config.json")["config"]
        assert (config["optimizer"], config["batch_size"]) == ("adam", 16)
    base = TrainConfig(dataset="digits", epochs=1)
    spec = SweepSpec.from_grid(base, lr=[0.01, 0.1], hidden=[(4,), "3,2"],
                               optimizer=["adam"], batch_size=[16])
    again = handgrad.sweep(spec, out=tmp_path / "s")  # the same sweep: resumed, nothing new
    assert again["configs"] == summary["configs"]
    with pytest.raises(TypeError, match="not both"):
        handgrad.sweep(spec, lr=[0.1], out=tmp_path / "t")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        handgrad.sweep(base, lr=0.1, batch_size=[16, 0], out=tmp_path / "u")
    assert not (tmp_path / "t").exists() and not (tmp_path / "u").exists()


def test_results_print_as_short_summaries(tmp_path):
    run = handgrad.train(**TINY, test=True)
    comparison = handgrad.compare(**TINY)
    summary = handgrad.sweep(**TINY, lr=[0.01, 0.1], out=tmp_path / "s")
    for result in (run, comparison, summary):
        line = repr(result)
        assert line.startswith("<") and "\n" not in line and len(line) < 250, line
        assert "tensor" not in str(result) and "Parameter" not in str(result)
        assert len(str(result)) < 1500
        page = result._repr_html_()
        assert page.startswith("<p>&lt;") and "<table>" in page and "tensor" not in page
    assert "RunResult completed: digits hidden 4 relu, sgd lr 0.01" in repr(run)
    assert "test acc" in repr(run) and "val_loss" in str(run)
    assert "largest loss gap" in repr(comparison)
    assert "2 configs" in repr(summary) and "selected lr=" in repr(summary)
    assert "optimizer" in str(summary) and "batch_size" in str(summary)


def test_train_keeps_the_test_set_unless_asked(capsys):
    run = handgrad.train(**TINY)
    assert run.test is None and run.summary()["test_loss"] is None
    assert capsys.readouterr() == ("", "")  # no progress unless asked
    shown = handgrad.train(**TINY, progress=True)
    assert shown.test is None and "epoch 1: train loss" in capsys.readouterr().out


def test_sweep_and_reproduce_show_progress_when_asked(tmp_path, capsys):
    handgrad.sweep(**TINY, lr=[0.01, 0.1], out=tmp_path / "s", progress=True)
    out = capsys.readouterr().out
    assert "[1/2] lr=" in out and "[2/2] lr=" in out
    handgrad.reproduce(**TINY, lr=[0.01, 0.1], momentum=0.9, out=tmp_path / "r",
                       progress=True)
    out = capsys.readouterr().out
    assert "1. gradient check: pass" in out and "3. sweep [2/2] " in out


@pytest.mark.parametrize("out", ["", " "])
@pytest.mark.parametrize("run", [handgrad.train, handgrad.compare])
def test_an_empty_out_is_refused(tmp_path, monkeypatch, out, run):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="out must be a folder path"):
        run(**TINY, out=out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("grid,message", [
    (dict(hidden=[[True, 8], [4]]), "hidden [True, 8] is not a list of integer widths"),
    (dict(hidden=[True]), "hidden [True] is not a list of integer widths"),
    (dict(batch_size=[True, 8]), "batch_size must be numbers or names, got True"),
    (dict(lr=[0.1, 1e39]), "lr 1e+39 is beyond the largest float32"),
])
def test_sweep_refuses_bools_as_numbers_before_anything_is_written(tmp_path, grid, message):
    out = tmp_path / "s"
    with pytest.raises(ValueError, match=re.escape(message)):
        handgrad.sweep(**{**TINY, **grid}, out=out)
    assert not out.exists()
