"""Flush-to-zero on every thread (engine/denormals.py), and what it does to training."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from handgrad.data import load_dataset
from handgrad.engine.denormals import (
    all_threads_flush,
    flush_denormals,
)
from handgrad.run.config import TrainConfig
from handgrad.run.train import train


@pytest.fixture
def restore_mode():
    yield
    flush_denormals(False)


def _in_a_fresh_process(body: str) -> str:
    """Run `body` in a new interpreter and return what it prints. The FPU mode is a property
    of each thread, and OpenMP teams started by earlier tests in this process (from other
    threads) keep modes of their own, so these checks start from a process of their own."""
    code = "import torch\nfrom handgrad.engine.denormals import *\n" + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_flush_reaches_every_thread_and_can_be_turned_off():
    out = _in_a_fresh_process("""
        torch.set_num_threads(max(torch.get_num_threads(), 2))  # a really parallel probe
        if not flush_denormals(True):
            print("unsupported")
        else:
            assert all_threads_flush()
            assert not flush_denormals(False) or not all_threads_flush()
            assert count_subnormals(torch.tensor([1e-40, 0.0, 1e-30, -1e-41])) == 2
            print("ok")
    """)
    if out == "unsupported":
        pytest.skip("this CPU or torch build cannot flush subnormals on every thread")
    assert out == "ok"


def test_the_mode_is_restored_after_the_block():
    out = _in_a_fresh_process("""
        flush_denormals(False)
        with denormals_mode(True) as everywhere:
            assert all_threads_flush() == everywhere
        assert not all_threads_flush()
        print("ok")
    """)
    assert out == "ok"


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
