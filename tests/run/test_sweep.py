from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from handgrad.cli.main import main
from handgrad.report.sweep import write_results_md
from handgrad.run.config import TrainConfig
from handgrad.run.rundir import read_json
from handgrad.run.sweep import (
    SweepSpec,
    config_key,
    run_sweep,
    start_method,
    study_name,
)
from support import started_configs, sweep_trials

BASE = TrainConfig(dataset="digits", hidden=(16,), epochs=3)


def _comparable(summary: dict) -> list:
    return [(r["lr"], r["weight_decay"], r["momentum"], r["status"], r["train_loss"],
             r["val_loss"], r["val_accuracy"]) for r in summary["configs"]]


def test_sweep_selects_on_validation_and_evaluates_once(tmp_path):
    spec = SweepSpec(BASE, grid={"lr": [0.001, 0.05], "weight_decay": [0.0],
                                 "momentum": [0.0, 0.9]})
    summary = run_sweep(tmp_path, spec)
    rows = summary["configs"]
    assert len(rows) == 4 and summary["select_by"] == "val_loss"
    best = min(rows, key=lambda r: r["val_loss"])
    sel = summary["selected"]
    assert (sel["lr"], sel["momentum"]) == (best["lr"], best["momentum"])
    assert {"test_loss", "test_accuracy", "confusion_matrix", "run_dir"} <= sel.keys()
    for row in rows:
        assert {"lr", "weight_decay", "momentum", "status", "train_loss", "val_loss",
                "val_accuracy", "run_dir"} <= row.keys()
        run = Path(row["run_dir"])
        assert {"config.json", "metrics.csv", "results.json", "weights.safetensors"} <= {
            p.name for p in run.iterdir()}
        assert read_json(run / "results.json")["test_accuracy"] is None  # only the selected
    assert write_results_md(tmp_path, summary).read_text().count("| * |") == 1
    assert (tmp_path / "results.csv").read_text().count("\n") == 5
    assert read_json(tmp_path / "results.json") == summary
    # a finished sweep rerun trains nothing again
    again = run_sweep(tmp_path, spec)
    assert _comparable(again) == _comparable(summary)
    assert set(started_configs(tmp_path).values()) == {1}


def test_select_by_accuracy(tmp_path):
    spec = SweepSpec(BASE, grid={"lr": [0.001, 0.05], "weight_decay": [0.0], "momentum": [0.9]})
    summary = run_sweep(tmp_path, spec, select_by="val_accuracy")
    best = max(summary["configs"], key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert summary["selected"]["lr"] == best["lr"]


def test_diverging_config_is_recorded_not_selected(tmp_path):
    spec = SweepSpec(BASE.replace(loss="sse"), grid={"lr": [0.01, 50.0], "weight_decay": [0.0],
                                                    "momentum": [0.0]})
    summary = run_sweep(tmp_path, spec)
    status = {r["lr"]: r["status"] for r in summary["configs"]}
    assert status == {0.01: "completed", 50.0: "diverged"}
    assert summary["selected"]["lr"] == 0.01


def test_two_workers_run_every_config_exactly_once(tmp_path):
    # configs long enough (a few tenths of a second each) that both workers get some
    grid = {"lr": [0.001, 0.01, 0.05], "weight_decay": [0.0, 0.01], "momentum": [0.9]}
    spec = SweepSpec(BASE.replace(epochs=20, hidden=(64,)), grid=grid)
    summary = run_sweep(tmp_path, spec, workers=2)
    started = started_configs(tmp_path)
    assert len(started) == 6 and set(started.values()) == {1}
    pids = {t.user_attrs["started"] for t in sweep_trials(tmp_path) if "started" in t.user_attrs}
    assert len(pids) == 2 and os.getpid() not in pids  # real worker processes
    assert all(r["status"] == "completed" for r in summary["configs"])


def test_workers_are_forked_only_when_single_threaded_on_the_cpu():
    """Fork shares the loaded data, but a forked child deadlocks in multi-threaded OpenMP
    after its parent used it, and cannot use CUDA at all (seen on an H100: 'Cannot
    re-initialize CUDA in forked subprocess')."""
    cpu = TrainConfig(dataset="digits", device="cpu")
    assert start_method(1, cpu) == "fork"
    assert start_method(2, cpu) == "spawn"
    assert start_method(1, cpu.replace(device="cuda")) == "spawn"


SWEEP_ARGS = ["sweep", "--dataset", "digits", "--hidden", "64", "--epochs", "60", "--quiet",
              "--workers", "1",
              "--lr", "0.001", "0.01", "--momentum", "0", "0.9", "--weight-decay", "0"]


def test_sigkilled_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main([*SWEEP_ARGS, "--out", str(straight)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "handgrad", *SWEEP_ARGS, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill in the middle of the second config
        done = list(killed.glob("configs/*/results.json"))
        if len(done) >= 1 and len(list(killed.glob("configs/*/metrics.csv"))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists(), "the sweep finished before it was killed"
    states = Counter(t.state.name for t in sweep_trials(killed))
    assert states["RUNNING"] == 1  # the dead worker's trial, left behind as Optuna does
    assert main([*SWEEP_ARGS, "--out", str(killed)]) == 0
    assert _comparable(read_json(killed / "results.json")) == _comparable(
        read_json(straight / "results.json"))
    started = started_configs(killed)
    assert sorted(started.values()) == [1, 1, 1, 2]  # only the killed config ran again
    complete = Counter(config_key(t.params) for t in sweep_trials(killed)
                       if t.state.name == "COMPLETE")
    assert set(complete.values()) == {1} and len(complete) == 4


def test_a_second_coordinator_on_the_same_dir_is_refused(tmp_path):
    import filelock

    with filelock.FileLock(str(tmp_path / "sweep.lock")), \
            pytest.raises(ValueError, match="another sweep is running"):
        run_sweep(tmp_path, SweepSpec(BASE, grid={"lr": [0.01]}))


def test_sweep_cli_bad_input(tmp_path, capsys):
    assert main([*SWEEP_ARGS[:8], "--lr", "0.1", "-2", "--out", str(tmp_path / "s")]) == 2
    assert "--lr must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_same_command_without_out_resumes_in_the_same_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet",
            "--lr", "0.01", "0.05"]
    assert main(args) == 0
    assert main(args) == 0
    assert main([*args, "--momentum", "0.9"]) == 0  # other settings, other directory
    dirs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(dirs) == 2 and all(d.startswith("sweep-digits-") for d in dirs)
    first = next(p for p in (tmp_path / "runs").iterdir()
                 if len(list(p.glob("configs/*"))) == 2 and "momentum-0.0" in
                 " ".join(q.name for q in p.glob("configs/*")))
    assert set(started_configs(first).values()) == {1}  # the second call trained nothing


def test_database_storage_runs_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = SweepSpec(BASE, grid={"lr": [0.01, 0.05], "weight_decay": [0.0], "momentum": [0.9]})
    first = run_sweep(tmp_path / "sweep", spec, storage=url)
    again = run_sweep(tmp_path / "sweep", spec, storage=url)
    assert _comparable(first) == _comparable(again)
    study = optuna.load_study(study_name=study_name(spec), storage=url)
    started = Counter(config_key(t.params) for t in study.trials if "started" in t.user_attrs)
    assert len(started) == 2 and set(started.values()) == {1}
    assert not (tmp_path / "sweep" / "study.journal").exists()


def test_bad_storage_url_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*SWEEP_ARGS, "--storage", "nosuchdb://x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot use --storage 'nosuchdb://x'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_finished_sweep_rerun_does_not_touch_the_test_set_again(tmp_path, monkeypatch):
    spec = SweepSpec(BASE, grid={"lr": [0.01, 0.05], "weight_decay": [0.0], "momentum": [0.9]})
    first = run_sweep(tmp_path, spec)
    import handgrad.run.sweep.folder as results

    def refuse(*args, **kwargs):
        raise AssertionError("the test set was evaluated a second time")

    monkeypatch.setattr(results, "evaluate_on_test", refuse)
    again = run_sweep(tmp_path, spec)
    assert again["selected"] == first["selected"]


def test_resuming_with_other_settings_is_refused_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sweep", "--dataset", "digits", "--hidden", "8", "--quiet", "--lr", "0.01", "0.05",
            "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*args, "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "other settings (epochs 1 -> 2)" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert main([*args, "--epochs", "2", "--lr", "0.01", "0.1"]) == 2
    assert "configs ['lr=0.01,momentum=0.0,weight_decay=0.0'," in capsys.readouterr().err
    assert main([*args, "--epochs", "1"]) == 0  # the same settings resume
    assert set(started_configs(out).values()) == {1}


def test_a_study_without_recorded_settings_is_not_resumed(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = SweepSpec(BASE, grid={"lr": [0.01]})
    study = optuna.create_study(study_name=study_name(spec), storage=url)
    study.enqueue_trial({"lr": 0.01})
    with pytest.raises(ValueError, match="without recorded settings"):
        run_sweep(tmp_path / "s", spec, storage=url)
    assert not (tmp_path / "s").exists()


def test_one_database_holds_many_sweeps_but_a_directory_one(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["sweep", "--dataset", "digits", "--hidden", "8", "--quiet", "--lr", "0.01",
            "--storage", url, "--workers", "1"]
    assert main([*args, "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert len(names) == 2 and all(n.startswith("handgrad-sweep-") for n in names)
    capsys.readouterr()
    before = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert main([*args, "--epochs", "2", "--out", str(tmp_path / "a")]) == 2
    assert "other settings (epochs 1 -> 2)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == before
    assert main([*args[:-2], "--workers", "2", "--out", str(tmp_path / "c")]) == 2
    assert "SQLite cannot hand trials to several worker" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_results_show_the_settings_every_config_shares(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--dataset", "digits", "--classes", "3", "8", "--hidden", "8",
                 "--epochs", "1", "--activation", "tanh", "--loss", "mse", "--standardize",
                 "--seed", "3", "--quiet", "--lr", "0.01", "0.05", "--out", str(out)]) == 0
    want = ["dataset=digits", "classes=3,8", "activation=tanh", "loss=mse", "standardize=True",
            "engine=manual", "epochs=1", "seed=3", "dtype=float32", "val_fraction=0.1"]
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("fixed: ")]
    markdown = [line for line in (out / "results.md").read_text().splitlines()
                if line.startswith("fixed: ")]
    for lines in (printed, markdown):
        assert len(lines) == 1 and all(w in lines[0] for w in want), lines
    assert "betas" not in printed[0]  # no config uses adam: betas would be noise
    summary = read_json(out / "results.json")
    assert summary["fixed"]["activation"] == "tanh" and summary["fixed"]["classes"] == ["3", "8"]
    assert not set(summary["fixed"]) & set(summary["hyperparameters"])  # the table shows those
    header, *rows = (out / "results.csv").read_text().splitlines()
    assert {"activation", "loss", "standardize", "seed", "epochs"} <= set(header.split(","))
    assert all("tanh" in row and "mse" in row for row in rows) and len(rows) == 2


def test_results_name_the_default_classes_not_all(tmp_path, capsys):
    """Without --classes the dataset's default two classes are trained on: the results
    must say which, not 'classes=all'."""
    out = tmp_path / "s"
    assert main(["sweep", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                 "--quiet", "--lr", "0.01", "--out", str(out)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("fixed: ")]
    assert len(printed) == 1 and "classes=3,8" in printed[0], printed
    assert read_json(out / "results.json")["fixed"]["classes"] == ["3", "8"]
