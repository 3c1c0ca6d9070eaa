from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from handgrad.cli.main import main
from handgrad.run.rundir import read_json
from support import DIGITS


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handgrad", *args], capture_output=True,
                          text=True, timeout=300)


def test_train_through_main_writes_a_complete_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.csv", "results.json",
                                               "weights.safetensors", "curves.png",
                                               "layers.csv", "report.html"}
    config = read_json(out / "config.json")
    assert config["config"]["dataset"] == "digits" and config["sizes"] == [64, 16, 2]
    assert config["command"] == ["handgrad", "train", *DIGITS, "--out", str(out)]
    assert "torch" in config["versions"]
    text = capsys.readouterr().out
    assert "val_accuracy" in text and "test_loss" not in text  # the test set is kept for the end
    assert read_json(out / "results.json")["test_loss"] is None


def test_train_evaluates_on_test_only_when_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--test", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test_accuracy" in text and "true \\ predicted" in text
    assert read_json(out / "results.json")["test_accuracy"] is not None


def test_version(capsys):
    from handgrad import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"handgrad {__version__}"


def test_same_command_and_seed_give_identical_metrics(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        proc = run_cli("train", *DIGITS, "--out", str(out), "--seed", "3")
        assert proc.returncode == 0, proc.stderr
    a, b = (read_curves_and_accuracy(out) for out in outs)
    assert a == b  # every column but the epoch's seconds
    assert (outs[0] / "weights.safetensors").read_bytes() == \
        (outs[1] / "weights.safetensors").read_bytes()


def read_curves_and_accuracy(out: Path) -> list[list[str]]:
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    assert rows[0][-1] == "seconds"
    return [row[:-1] for row in rows]


@pytest.mark.parametrize("args,message", [
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["--momentum", "1.0"], "--momentum must be in [0, 1), got 1.0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--activation", "swish"], "unknown activation 'swish'; choose from: relu"),
    (["--loss", "hinge"], "unknown loss 'hinge'"),
    (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
    (["--optimizer", "adam", "--betas", "0.9", "1.0"], "--betas must be in [0, 1)"),
    (["--classes", "3", "cats"], "unknown class 'cats' for digits"),
    (["--classes", "3"], "need at least two classes, got 1"),
])
def test_bad_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_cifar_is_a_one_line_error_as_a_subprocess(tmp_path):
    proc = run_cli("train", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "cifar-10-batches-py" in proc.stderr and "--download" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_the_command_flushes_everything_before_its_fast_exit(tmp_path):
    proc = run_cli("train", *DIGITS, "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"run directory: {tmp_path / 'r'}")
    assert read_json(tmp_path / "r" / "results.json")["status"] == "completed"


def test_diverged_run_exits_3(tmp_path):
    proc = run_cli("train", *DIGITS, "--lr", "50", "--loss", "sse", "--out", str(tmp_path / "r"))
    assert proc.returncode == 3 and "diverged" in proc.stderr
    assert read_json(tmp_path / "r" / "results.json")["status"] == "diverged"


def test_evaluate_reloads_and_matches(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--test", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = read_json(out / "results.json")["test_accuracy"]
    assert f"{expected:.4g}" in printed


def test_evaluate_refuses_mismatched_architecture_and_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--classes", "1", "7"]) == 2
    assert "dataset mismatch" in capsys.readouterr().err
    weights = load_file(str(out / "weights.safetensors"))
    weights["fc.1.weight"] = weights["fc.1.weight"][:8]
    weights["fc.1.bias"] = weights["fc.1.bias"][:8]
    save_file(weights, str(out / "weights.safetensors"))
    assert main(["evaluate", str(out)]) == 2
    assert "architecture mismatch" in capsys.readouterr().err


def test_evaluate_missing_run_dir(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_compare_prints_gaps_and_saves_a_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *DIGITS, "--dtype", "float64", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "largest gap" in text
    assert (out / "engines.png").exists()
    assert read_json(out / "compare.json")["max_gap"] <= 1e-9


def test_gradcheck_command_passes_on_a_small_net(capsys):
    assert main(["gradcheck", "--sizes", "20", "8", "3", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "W1" in out and "b2" in out and "all gradients agree" in out


def test_check_backprop_command_exit_codes(capsys):
    examples = Path(__file__).resolve().parents[2] / "examples"
    assert main(["check-backprop", f"{examples / 'backprop_correct.py'}:backpropagation"]) == 0
    assert main(["check-backprop", f"{examples / 'backprop_bugs' / 'transposed.py'}"]) == 1
    assert "transposed" in capsys.readouterr().out
    assert main(["check-backprop", f"{examples / 'backprop_correct.py'}:nope"]) == 2
    assert "no function 'nope'" in capsys.readouterr().err


def test_epochs_zero_is_refused_not_defaulted(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["train", "--dataset", "digits", "--epochs", "0", "--out", out]) == 2
    assert "--epochs must be >= 1, got 0" in capsys.readouterr().err


def test_hidden_grid_must_be_widths(tmp_path, capsys):
    assert main(["sweep", "--dataset", "digits", "--hidden-grid", "abc",
                 "--out", str(tmp_path / "s")]) == 2
    assert "is not a list of widths" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_train_again_in_the_same_run_dir_with_its_curves_png(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *DIGITS, "--out", str(out)]) == 0
    first = (out / "curves.png").stat().st_mtime_ns
    assert main(["train", *DIGITS, "--out", str(out)]) == 0  # curves.png is the run's own
    assert (out / "curves.png").stat().st_mtime_ns >= first
