"""Flush-to-zero on every thread (engine/denormals.py), and what it does to training."""

from __future__ import annotations

import pytest
import torch

from handgrad.data import load_dataset
from handgrad.engine.denormals import (
    all_threads_flush,
    count_subnormals,
    denormals_mode,
    flush_denormals,
)
from handgrad.run.config import TrainConfig
from handgrad.run.train import train


@pytest.fixture
def restore_mode():
    yield
    flush_denormals(False)


def test_flush_reaches_every_thread_and_can_be_turned_off(restore_mode):
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, 2))  # make the probe's operation really parallel
    try:
        if not flush_denormals(True):
            pytest.skip("this CPU or torch build cannot flush subnormals on every thread")
        assert all_threads_flush()
        assert not flush_denormals(False) or not all_threads_flush()
        assert count_subnormals(torch.tensor([1e-40, 0.0, 1e-30, -1e-41])) == 2
    finally:
        torch.set_num_threads(threads)


def test_the_mode_is_restored_after_the_block(restore_mode):
    flush_denormals(False)
    with denormals_mode(True) as everywhere:
        assert all_threads_flush() == everywhere
    assert not all_threads_flush()


def test_flush_changes_float64_training_only_below_the_smallest_normal(restore_mode):
    data = load_dataset("digits", classes=["1", "7"], seed=0)
    runs = {}
    for keep in (False, True):
        for engine in ("manual", "autograd"):
            config = TrainConfig(dataset="digits", classes=("1", "7"), hidden=(16, 8),
                                 engine=engine, lr=0.05, momentum=0.9, epochs=2,
                                 dtype="float64", keep_denormals=keep)
            runs[keep, engine] = train(config, data, evaluate_test=False)
    assert runs[True, "manual"].config.to_dict()["keep_denormals"] is True
    assert not all_threads_flush()  # train() restores the mode it found (hypothesis needs it)
    for (keep, engine), run in runs.items():
        other = runs[not keep, engine].model.state_dict()
        twin = runs[keep, "autograd"].model.state_dict()
        for name, value in run.model.state_dict().items():
            assert torch.allclose(value, other[name], rtol=1e-12, atol=1e-300), name
            assert torch.allclose(value, twin[name], rtol=1e-10, atol=1e-12), name


def test_keep_denormals_must_be_a_bool():
    with pytest.raises(ValueError, match="keep_denormals must be true or false"):
        TrainConfig(keep_denormals="no").validate()
