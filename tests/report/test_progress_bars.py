from __future__ import annotations

import io

import pytest
import torch

from handgrad import MLP, gradcheck
from handgrad.report.progress_bars import EpochProgress, RunProgress, config_line
from handgrad.run.config import TrainConfig
from handgrad.run.progress import ConfigDone, PhaseDone, Progress
from handgrad.run.sweep import run_sweep
from handgrad.run.sweep_spec import SweepSpec
from handgrad.run.train import EpochMetrics

BASE = TrainConfig(dataset="digits", hidden=(16,), epochs=2)


class Recorder(Progress):
    def __init__(self) -> None:
        self.starts, self.done = [], []

    def sweep_start(self, total: int, done: int) -> None:
        self.starts.append((total, done))

    def config_done(self, event: ConfigDone) -> None:
        self.done.append(event)


def test_config_line_reads_like_the_issue():
    e = ConfigDone(2, 4, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}, "completed",
                   0.4123, 0.83, 9.84)
    assert config_line(e) == ("[2/4] lr=0.01 momentum=0.9 weight_decay=0: val loss 0.4123, "
                              "acc 0.83, 9.8 s")
    diverged = ConfigDone(1, 4, {"lr": 10.0}, "diverged", None, None, None)
    assert config_line(diverged, "3. sweep ") == "3. sweep [1/4] lr=10: diverged"


@pytest.mark.parametrize("workers", [1, 2])  # in this process; worker processes
def test_a_sweep_reports_every_finished_config_once(tmp_path, workers):
    spec = SweepSpec(BASE, grid={"lr": [0.001, 0.05], "momentum": [0.0, 0.9]})
    rec = Recorder()
    summary = run_sweep(tmp_path, spec, workers=workers, progress=rec)
    assert rec.starts == [(4, 0)]
    assert [e.done for e in rec.done] == [1, 2, 3, 4] and {e.total for e in rec.done} == {4}
    rows = {(r["lr"], r["momentum"]): r for r in summary["configs"]}
    assert {(e.values["lr"], e.values["momentum"]) for e in rec.done} == set(rows)
    for e in rec.done:
        row = rows[(e.values["lr"], e.values["momentum"])]
        assert (e.status, e.val_loss, e.val_accuracy) == (row["status"], row["val_loss"],
                                                          row["val_accuracy"])
        assert e.seconds is not None and e.seconds >= 0
    again = Recorder()
    run_sweep(tmp_path, spec, workers=workers, progress=again)  # finished: resumes nothing
    assert again.starts == [(4, 4)] and again.done == []


def checked():
    """A real gradient check of a small network: 4 tensors, all passing."""
    x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return gradcheck(MLP([3, 4, 2], dtype=torch.float64), x, torch.zeros(3, 2, dtype=x.dtype),
                     "sse")


def test_run_progress_piped_writes_one_line_per_event_and_no_bar():
    out = io.StringIO()
    p = RunProgress(bar=False, phases=1, sweep_prefix="3. sweep ", out=out)
    p.sweep_start(2, 0)
    p.config_done(ConfigDone(1, 2, {"lr": 0.1}, "completed", 0.5, 0.75, 1.0))
    p.phase_done(PhaseDone(1, "gradcheck", {"report": checked()}, 0.25))
    p.phase_done(PhaseDone(4, "test", {"summary": {"selected": {"test_loss": 0.3,
                                                                "test_accuracy": 0.5}}}, None))
    p.close()
    assert out.getvalue().splitlines() == [
        "3. sweep [1/2] lr=0.1: val loss 0.5, acc 0.75, 1.0 s",
        "1. gradient check: pass, 4 tensors in float64 (0.2 s)",
        "4. selected config on the test set: loss 0.3, accuracy 0.5"]
    assert p.bar is None


def test_run_progress_resumed_says_how_many_were_done_and_quiet_says_nothing():
    out = io.StringIO()
    RunProgress(bar=False, out=out).sweep_start(4, 3)
    assert out.getvalue() == "3/4 configs done before\n"
    quiet = io.StringIO()
    p = RunProgress(quiet=True, out=quiet)
    p.sweep_start(4, 0)
    p.config_done(ConfigDone(1, 4, {"lr": 0.1}, "completed", 0.5, 0.75, 1.0))
    assert quiet.getvalue() == ""


def test_run_progress_bar_counts_configs_and_phases():
    p = RunProgress(bar=True, phases=2, out=io.StringIO())
    p.sweep_start(3, 1)
    p.config_done(ConfigDone(2, 3, {"lr": 0.1}, "completed", 0.5, 0.75, 1.0))
    p.phase_done(PhaseDone(1, "gradcheck", {"report": checked()}, 0.1))
    assert (p.bar.n, p.bar.total) == (3, 5)
    p.close()


def test_epoch_progress_lines_unless_quiet():
    out = io.StringIO()
    m = EpochMetrics(3, 0.5, 0.75, 0.625, 0.8, 1.25)
    EpochProgress(bar=False, out=out).epoch_end(m)
    assert out.getvalue() == ("epoch 3: train loss 0.5000 acc 0.7500 | val loss 0.6250 acc "
                              "0.8000 | 1.2 s\n")
    quiet = io.StringIO()
    EpochProgress(quiet=True, out=quiet).epoch_end(m)
    assert quiet.getvalue() == ""
