from __future__ import annotations

import json
import math

import pytest
import torch

from handgrad.run.rundir import atomic_write_bytes, load_weights, save_weights, write_json


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
