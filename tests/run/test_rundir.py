from __future__ import annotations

import json
import math
import os

import pytest
import torch

import handgrad
from handgrad.run.config import TrainConfig
from handgrad.run.rundir import (
    RunDir,
    atomic_write_bytes,
    load_model,
    load_result,
    load_weights,
    read_curves,
    read_json,
    save_weights,
    weights_bytes,
    write_json,
)
from handgrad.run.train import train


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_gives_the_mode_of_any_new_file(tmp_path):
    before = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "report.html", b"<html></html>")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
    finally:
        os.umask(before)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_json_is_strict_with_non_finite_numbers(tmp_path):
    write_json(tmp_path / "r.json", {"a": math.inf, "b": [math.nan, 1.5]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [None, 1.5]}


def test_weights_round_trip_and_a_corrupt_file_is_named(tmp_path):
    state = {"fc.1.weight": torch.randn(3, 2), "fc.1.bias": torch.randn(3)}
    save_weights(tmp_path / "w.safetensors", state, {"sizes": "2,3"})
    loaded = load_weights(tmp_path / "w.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="bad.safetensors: not a valid safetensors file"):
        load_weights(tmp_path / "bad.safetensors")


# ---- the run directory's format -----------------------------------------------------------

@pytest.fixture(scope="module")
def finished(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=2, lr=0.05)
    return out, train(config, digits, out)


def test_the_metadata_order_never_changes_the_bytes():
    state = {"fc.1.weight": torch.randn(3, 2), "fc.1.bias": torch.randn(3)}
    meta = {"sizes": "2,3", "activation": "relu", "dataset": "digits", "classes": "3,8"}
    reordered = dict(reversed(list(meta.items())))
    assert weights_bytes(state, meta) == weights_bytes(state, reordered)
    header = weights_bytes(state, meta)[8:].split(b"}}", 1)[0]
    assert header.index(b'"activation"') < header.index(b'"classes"') < header.index(b'"sizes"')


def test_a_finished_run_reads_back_as_it_was(finished):
    out, result = finished
    loaded = load_result(out)
    assert loaded.status == "completed" and loaded.class_names == ("3", "8")
    assert loaded.config == result.config
    assert [(m.epoch, m.train_loss, m.val_loss, m.val_accuracy) for m in loaded.history] == \
        [(m.epoch, m.train_loss, m.val_loss, m.val_accuracy) for m in result.history]
    assert all(m.seconds > 0 for m in loaded.history)
    assert loaded.test == result.test
    assert read_curves(out) == {k: [getattr(m, k) for m in result.history]
                                for k in ("train_loss", "val_loss", "train_accuracy",
                                          "val_accuracy")}
    model = load_model(out)
    for name, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert "completed" in repr(handgrad.load_run(out)) and len(repr(handgrad.load_run(out))) < 200


def test_read_curves_of_a_run_not_started_is_empty_and_of_a_corrupt_file_an_error(tmp_path):
    assert read_curves(tmp_path) == {"train_loss": [], "val_loss": [], "train_accuracy": [],
                                     "val_accuracy": []}
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,train_accuracy,val_loss,val_accuracy"
                                          "\n1,abc,0.5,0.1,0.5\n")
    with pytest.raises(ValueError, match="metrics.csv: row 1 is not numbers"):
        read_curves(tmp_path)
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,2\n")
    with pytest.raises(ValueError, match="missing columns train_loss"):
        read_curves(tmp_path)


def test_a_diverged_run_has_no_weights_to_load(digits, tmp_path):
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=2, lr=50.0, loss="sse")
    assert train(config, digits, tmp_path).status == "diverged"
    assert read_json(tmp_path / "results.json")["weights_sha256"] is None
    assert load_result(tmp_path).status == "diverged"
    with pytest.raises(ValueError, match="run status is 'diverged'"):
        load_model(tmp_path)


@pytest.mark.parametrize("files,message", [
    ({"notes.txt": "mine"}, "not a handgrad run directory"),
    ({"results.json": "{}"}, "but no config.json"),
    ({"config.json": "{"}, "config.json: not valid JSON.*use another out"),
])
def test_a_folder_that_is_not_a_run_of_these_settings_is_never_written(digits, tmp_path,
                                                                         files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1)
    with pytest.raises(ValueError, match=message):
        train(config, digits, tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files


def test_temporaries_of_a_killed_run_are_removed_by_the_next(digits, tmp_path):
    for name in (".metrics.csv.abc", ".results.json.x1", ".weights.safetensors.q"):
        (tmp_path / name).write_text("half")
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1)
    train(config, digits, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "layers.csv", "metrics.csv", "results.json", "weights.safetensors"]


def test_a_rerun_that_differs_only_in_download_or_class_spelling_is_the_same_run(digits,
                                                                                tmp_path):
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1)
    train(config, digits, tmp_path)
    RunDir(tmp_path).check_reusable(config.replace(download=True, classes=("3", "8")),
                                    digits.class_names)
    with pytest.raises(ValueError, match=r"lr: 0.01 there, 0.02 now"):
        RunDir(tmp_path).check_reusable(config.replace(lr=0.02), digits.class_names)
