"""Sweeps under bad input, interruptions and damaged directories: real processes, real
signals, real files. Nothing is written before validation, nothing unearned is reported."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch

from handgrad.cli.main import main
from handgrad.run.config import TrainConfig
from handgrad.run.rundir import read_json, write_json
from handgrad.run.sweep import (
    JOURNAL,
    SweepSpec,
    config_key,
    open_storage,
    run_sweep,
    study_name,
)
from handgrad.run.sweep.study import (
    CONFIG,
    INVALID,
    enqueue,
    first_of_its_config,
    has_waiting,
    open_study,
)
from support import started_configs, sweep_trials

BASE = TrainConfig(dataset="digits", hidden=(16,), epochs=2)
GRID = {"lr": [0.01, 0.05], "weight_decay": [0.0], "momentum": [0.0, 0.9]}
DIGITS = ["sweep", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet"]


def _metrics(summary: dict) -> list:
    return [{k: v for k, v in r.items() if k != "run_dir"} for r in summary["configs"]]


def _files(root: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("bad", [
    ["--classes", "3", "3"],
    ["--classes", "3", "x"],
    ["--dataset", "cifar10", "--data-dir", "no/such/dir"],
    ["--val-fraction", "1.5"],
])
def test_bad_input_leaves_nothing_and_the_corrected_command_runs(tmp_path, capsys, bad):
    out = tmp_path / "s"
    assert main([*DIGITS, "--lr", "0.01", *bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("handgrad: error:") and "\n" not in err
    assert not out.exists()
    assert main([*DIGITS, "--lr", "0.01", "--classes", "3", "8", "--out", str(out)]) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_network_too_big_for_memory_is_refused_before_anything_is_written(
        tmp_path, capsys, workers):
    out = tmp_path / "s"
    args = ["sweep", "--dataset", "digits", "--epochs", "1", "--quiet", "--lr", "0.01",
            "--workers", workers, "--out", str(out)]
    assert main([*args, "--hidden-grid", "8", "1000000,1000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("handgrad: error: config hidden=1000000,1000000")
    assert "memory" in err and "\n" not in err
    assert not out.exists()
    assert main([*args, "--hidden-grid", "8", "4"]) == 0  # the corrected command runs


@pytest.mark.parametrize("bad", [dict(workers=2.5), dict(workers=True), dict(workers=0),
                                 dict(storage=123), dict(select_by=["val_loss"])])
def test_api_sweep_refuses_bad_options_before_anything_is_written(tmp_path, bad):
    import handgrad

    out = tmp_path / "s"
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):  # the setting's name; the CLI's are flags
        handgrad.sweep(dataset="digits", hidden=[8], epochs=1, lr=0.01, out=out, **bad)
    assert not out.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_config_that_fails_for_its_settings_is_one_truthful_line(
        tmp_path, capsys, monkeypatch, workers):
    """A deterministic error in one config's training (injected: a real one, such as an lr
    that overflows float32, is refused by validation now) is one line that never says a
    rerun would finish the sweep: a rerun fails the same way. Workers are forked, so they
    see the injected error too."""
    import handgrad.run.sweep.coordinator as sweep_module

    real = sweep_module.train

    def failing_train(config, *args, **kwargs):
        if config.lr == 0.05:
            raise RuntimeError("value cannot be converted to type float without overflow")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "train", failing_train)
    out = tmp_path / "s"
    assert main([*DIGITS, "--lr", "0.01", "0.05", "--workers", workers,
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "config lr=0.05" in err and "overflow" in err
    assert "would fail the same way" in err and "to finish" not in err


def test_a_malicious_pickle_never_runs_and_leaves_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    batches = root / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"):
        (batches / name).write_bytes(pickle.dumps(Evil()))
    out = tmp_path / "s"
    args = ["sweep", "--data-dir", str(root), "--hidden", "8", "--epochs", "1", "--quiet",
            "--lr", "0.01", "--out", str(out)]
    assert main(args) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    assert not marker.exists() and not out.exists()


def test_sweep_never_overwrites_a_training_run_or_a_foreign_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet",
                 "--out", str(run)]) == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    for out in (run, tmp_path / "other"):
        before = _files(out)
        capsys.readouterr()
        assert main([*DIGITS, "--lr", "0.01", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "choose an empty or new directory" in err and err.count("\n") == 1
        assert _files(out) == before
        assert ("is a training run" in err) == (out == run)


def test_a_sweep_dir_with_another_storage_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*DIGITS, "--lr", "0.01", "--out", str(out)]) == 0
    capsys.readouterr()
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main([*DIGITS, "--lr", "0.01", "--out", str(out), "--storage", url,
                 "--workers", "1"]) == 2
    assert "give the same --storage" in capsys.readouterr().err


def _damage(sweep_dir: Path, summary: dict) -> dict[str, str]:
    """Break the four configs' run directories in four ways; return what was done to which."""
    rows = summary["configs"]
    dirs = [Path(r["run_dir"]) for r in rows]
    (dirs[0] / "results.json").unlink()
    (dirs[1] / "results.json").write_text("{not json")
    write_json(dirs[2] / "results.json", read_json(dirs[3] / "results.json"))  # another's
    weights = bytearray((dirs[3] / "weights.safetensors").read_bytes())
    weights[-5] ^= 0x10  # one bit of one weight
    (dirs[3] / "weights.safetensors").write_bytes(bytes(weights))
    return {config_key({k: r[k] for k in GRID}): how for r, how in
            zip(rows, ("deleted", "corrupt", "swapped", "bit-flipped"), strict=True)}


def test_broken_results_are_rerun_not_reported_and_a_stale_journal_lock_is_cleared(tmp_path):
    spec = SweepSpec(BASE, grid=GRID)
    first = run_sweep(tmp_path, spec)
    damaged = _damage(tmp_path, first)
    # what a process SIGKILLed inside Optuna's journal append leaves: its lock (a symlink)
    # and a last line without its end; Optuna alone would stall 30 s, then fail to parse
    journal = tmp_path / JOURNAL
    os.symlink(journal, f"{journal}.lock")
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id"')
    start = time.monotonic()
    again = run_sweep(tmp_path, spec)
    assert time.monotonic() - start < 25, "the stale journal lock was waited for"
    assert not Path(f"{journal}.lock").exists()
    assert _metrics(again) == _metrics(first)
    started = started_configs(tmp_path)
    assert {k for k, n in started.items() if n == 2} == set(damaged) == set(started)
    for row in again["configs"]:  # every reported result is the config's own, intact
        assert read_json(Path(row["run_dir"]) / "results.json")["val_loss"] == row["val_loss"]


def test_a_deleted_run_directory_is_rerun(tmp_path):
    spec = SweepSpec(BASE, grid={"lr": [0.01, 0.05]})
    first = run_sweep(tmp_path, spec)
    import shutil

    shutil.rmtree(first["configs"][1]["run_dir"])
    assert _metrics(run_sweep(tmp_path, spec)) == _metrics(first)
    assert sorted(started_configs(tmp_path).values()) == [1, 2]


def test_results_do_not_depend_on_the_worker_count(tmp_path):
    """float32 results depend on torch's thread count (hidden 256 on digits shows it); every
    config trains on the same number of threads whatever --workers is."""
    spec = SweepSpec(BASE.replace(hidden=(256,), epochs=2, momentum=0.9),
                     grid={"lr": [0.02, 0.05]})
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as on a two-core machine, where 2 workers got 1 thread each
    try:
        one = run_sweep(tmp_path / "one", spec, workers=1)
        two = run_sweep(tmp_path / "two", spec, workers=2)
    finally:
        torch.set_num_threads(before)
    assert _metrics(one) == _metrics(two)


SLOW_SWEEP = [*DIGITS[:4], "64", "--epochs", "40", "--quiet", "--lr", "0.001", "0.01",
              "--momentum", "0.9"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_prints_one_line_exits_130_and_the_rerun_finishes(tmp_path, workers):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "handgrad", *SLOW_SWEEP, "--workers", workers, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group, as in a terminal
    deadline = time.time() + 120
    while not list(out.glob("configs/*/metrics.csv")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().strip() == "handgrad: interrupted"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker left behind
    assert not (out / "results.json").exists()
    assert main([*SLOW_SWEEP, "--workers", "1", "--out", str(out)]) == 0
    complete = Counter(config_key(t.params) for t in sweep_trials(out)
                       if t.state.name == "COMPLETE")
    assert len(complete) == 2 and set(complete.values()) == {1}


def _take_trials(storage_dir: str, taken) -> None:
    """A worker process that asks for waiting trials until none is left."""
    study = optuna.load_study(study_name="s", storage=open_storage(Path(storage_dir), None))
    while has_waiting(study):
        trial = study.ask()
        if CONFIG in trial.user_attrs:
            taken.put(trial.number)
        study.tell(trial, 0.0)


def test_each_waiting_trial_is_handed_to_one_worker_process(tmp_path):
    """What the sweep relies on instead of a protocol of its own: `Study.ask` pops every
    enqueued trial of a journal once, whatever the number of processes asking."""
    import multiprocessing

    study = optuna.create_study(study_name="s", storage=open_storage(tmp_path, None))
    for lr in range(40):
        enqueue(study, {"lr": lr})
    ctx = multiprocessing.get_context("fork")
    taken = ctx.SimpleQueue()
    procs = [ctx.Process(target=_take_trials, args=(str(tmp_path), taken)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    numbers = []
    while not taken.empty():
        numbers.append(taken.get())
    assert sorted(numbers) == list(range(40)) and all(p.exitcode == 0 for p in procs)


def test_a_config_enqueued_twice_runs_once(tmp_path):
    """Two coordinators resuming one study at once may enqueue a config twice: only the
    earliest trial of a config that waits, runs or holds its result trains it."""
    study = optuna.create_study(storage=open_storage(tmp_path, None))
    for lr in (0.1, 0.2):
        enqueue(study, {"lr": lr})
        enqueue(study, {"lr": lr})
    trials = [study.ask() for _ in range(4)]  # four workers hold one trial each at once
    assert [first_of_its_config(study, t) for t in trials] == [True, False, True, False]
    study.tell(trials[0], 1.0)
    study.tell(trials[1], state=optuna.trial.TrialState.PRUNED)
    enqueue(study, {"lr": 0.1})
    late = study.ask()
    assert not first_of_its_config(study, late)  # the config holds its result already
    study.set_user_attr(INVALID, [trials[0].number])  # that result was found broken
    assert first_of_its_config(study, late)


def test_duplicate_trials_waiting_in_a_finished_sweep_train_nothing(tmp_path):
    spec = SweepSpec(BASE, grid={"lr": [0.01, 0.05]})
    first = run_sweep(tmp_path, spec)
    study = optuna.load_study(study_name=None, storage=open_storage(tmp_path, None))
    for values in spec.configs():
        enqueue(study, values)
    assert _metrics(run_sweep(tmp_path, spec, workers=2)) == _metrics(first)
    assert set(started_configs(tmp_path).values()) == {1}
    assert not has_waiting(study)


DATABASE_SWEEP = """
import sys
from handgrad.run.config import TrainConfig
from handgrad.run.sweep import SweepSpec, run_sweep
spec = SweepSpec(TrainConfig(dataset="digits", hidden=(64,), epochs=40, momentum=0.9),
                 grid={"lr": [0.001, 0.01]})
run_sweep(sys.argv[1], spec, storage=sys.argv[2], heartbeat=(1, 2))
"""


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_worker_on_a_database_is_retried_after_its_heartbeat_stops(tmp_path):
    """SQLite stands in for PostgreSQL (tests/e2e/test_postgres.py does it on a real server):
    Optuna's heartbeat fails the dead trial, and its config is enqueued again, once."""
    url, out = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", DATABASE_SWEEP, str(out), url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.glob("configs/*/metrics.csv")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3)  # past the grace period of its last heartbeat
    spec = SweepSpec(TrainConfig(dataset="digits", hidden=(64,), epochs=40, momentum=0.9),
                     grid={"lr": [0.001, 0.01]})
    study = open_study(out, spec, url, heartbeat=(1, 2))
    optuna.storages.fail_stale_trials(study)  # what a worker does before each trial
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(config_key(t.user_attrs[CONFIG]) for t in waiting) == sorted(
        config_key(v) for v in spec.configs())  # the killed config is waiting again
    run_sweep(out, spec, storage=url, heartbeat=(1, 2))
    trials = optuna.load_study(study_name=study_name(spec), storage=url).trials
    assert Counter(t.state.name for t in trials) == {"COMPLETE": 2, "FAIL": 1}
    started = Counter(config_key(t.user_attrs[CONFIG]) for t in trials if "started" in t.user_attrs)
    assert sorted(started.values()) == [1, 2]
