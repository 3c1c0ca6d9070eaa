"""Every option a command is given reaches every config it runs, or is refused in one line."""

from __future__ import annotations

import itertools

import pytest

from handgrad.cli.main import main
from handgrad.cli.parser import build_parser, parse
from handgrad.run.rundir import read_json

SWEEP = ["sweep", "--dataset", "digits", "--epochs", "1", "--quiet", "--workers", "1"]

# (TrainConfig field, the options that set it, the value every config.json must record)
OPTIONS = [
    ("classes", ["--classes", "1", "7"], ["1", "7"]),
    ("standardize", ["--standardize"], True),
    ("val_fraction", ["--val-fraction", "0.2"], 0.2),
    ("data_dir", ["--data-dir", "elsewhere"], "elsewhere"),
    ("hidden", ["--hidden", "5", "3"], [5, 3]),
    ("hidden", ["--hidden-grid", "6,2"], [6, 2]),
    ("activation", ["--activation", "tanh"], "tanh"),
    ("loss", ["--loss", "sse"], "sse"),
    ("engine", ["--engine", "autograd"], "autograd"),
    ("optimizer", ["--optimizer", "adamw"], "adamw"),
    ("lr", ["--lr", "0.05"], 0.05),
    ("momentum", ["--momentum", "0.5"], 0.5),
    ("weight_decay", ["--weight-decay", "0.01"], 0.01),
    ("nesterov", ["--nesterov", "--momentum", "0.9"], True),
    ("betas", ["--optimizer", "adam", "--betas", "0.8", "0.9"], [0.8, 0.9]),
    ("epochs", ["--epochs", "2"], 2),
    ("batch_size", ["--batch-size", "7"], 7),
    ("seed", ["--seed", "5"], 5),
    ("device", ["--device", "cpu"], "cpu"),
    ("dtype", ["--dtype", "float64"], "float64"),
]
# options of the grid commands that are not training settings
NOT_TRAINING = {"help", "out", "quiet", "workers", "storage", "select_by", "download",
                "dataset"}


def _sweep_args(option_args: list[str]) -> list[str]:
    hidden = [] if any(a.startswith("--hidden") for a in option_args) else ["--hidden", "4"]
    return [*SWEEP, *hidden, "--lr", "0.02", *option_args]


def _recorded(out) -> list[dict]:
    configs = sorted((out / "configs").glob("*/config.json"))
    assert configs, "the sweep ran no config"
    return [read_json(p)["config"] for p in configs]


def test_every_training_option_of_the_grid_commands_is_in_the_table():
    for command in ("sweep", "reproduce"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        dests = {a.dest for a in sub._actions} - NOT_TRAINING - {"hidden_grid"}
        covered = {name for name, _, _ in OPTIONS}
        assert dests <= covered, f"{command}: options missing from OPTIONS: {dests - covered}"


@pytest.mark.parametrize("name,option_args,value", OPTIONS,
                         ids=[" ".join(o) for _, o, _ in OPTIONS])
def test_a_sweep_records_each_option_in_every_config(tmp_path, name, option_args, value):
    out = tmp_path / "s"
    assert main([*_sweep_args(option_args), "--out", str(out)]) == 0
    for config in _recorded(out):
        assert config[name] == value


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
@pytest.mark.parametrize("name,option_args,value", OPTIONS,
                         ids=[" ".join(o) for _, o, _ in OPTIONS])
def test_each_option_reaches_every_config_of_the_spec(command, name, option_args, value):
    args = parse([command, *_sweep_args(option_args)[1:]])
    for values in args.spec.configs():
        config = args.spec.config_for(values).to_dict()
        assert config[name] == value


def test_the_issue_command_trains_adam_batch_7_hidden_16_8(tmp_path):
    out = tmp_path / "s"
    assert main([*SWEEP, "--lr", "0.01", "--optimizer", "adam", "--batch-size", "7",
                 "--hidden-grid", "16,8", "--out", str(out)]) == 0
    (config,) = _recorded(out)
    assert (config["optimizer"], config["batch_size"], config["hidden"]) == ("adam", 7, [16, 8])


def test_lists_multiply_the_configs_and_each_records_its_own_values():
    args = parse([*SWEEP, "--lr", "0.01", "0.02", "--optimizer", "sgd", "adam",
                  "--batch-size", "7", "9", "--hidden-grid", "4", "6,2", "--weight-decay",
                  "0", "0.1"])
    recorded = set()
    for values in args.spec.configs():
        c = args.spec.config_for(values)
        recorded.add((c.lr, c.optimizer, c.batch_size, c.hidden, c.weight_decay))
    assert recorded == set(itertools.product([0.01, 0.02], ["sgd", "adam"], [7, 9],
                                             [(4,), (6, 2)], [0.0, 0.1]))


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("option_args,message", [
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to sgd only"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number, got inf"),
    (["--momentum", "nan"], "--momentum must be a finite number, got nan"),
    (["--betas", "nan", "0.9"], "--betas must be a finite number, got nan"),
    (["--val-fraction", "nan"], "--val-fraction must be a finite number, got nan"),
    (["--val-fraction", "1"], "--val-fraction must be in (0, 1), got 1.0"),
    (["--val-fraction", "0"], "--val-fraction must be in (0, 1), got 0.0"),
    (["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (["--epochs", "1.5"], "invalid int value: '1.5'"),
    (["--seed", "1e20"], "--seed: '1e20' is not an integer"),
    (["--seed", "-1"], "--seed: must be an integer in [0, 4294967295], got -1"),
    (["--seed", str(2**64)], f"--seed: must be an integer in [0, 4294967295], got {2**64}"),
    (["--hidden", "0"], "--hidden widths must be >= 1"),
    (["--lr", "abc"], "invalid float value: 'abc'"),
])
def test_bad_values_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, command,
                                                          option_args, message):
    out = tmp_path / "out"
    args = _sweep_args(option_args) if command == "sweep" else [
        "train", "--dataset", "digits", "--hidden", "4", "--epochs", "1", "--quiet",
        *option_args]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("option_args,message", [
    (["--lr", "0.01", "inf"], "config lr=inf,momentum=0.0,weight_decay=0.0: --lr must be a "
                              "finite number, got inf"),
    (["--batch-size", "7", "0"], "--batch-size must be >= 1, got 0"),
    (["--optimizer", "adam"], "the exercise's default grid uses SGD momentum 0.9"),
    (["--optimizer", "sgd", "adam", "--momentum", "0.9"], "--momentum applies to sgd only"),
    (["--nesterov"], "--nesterov needs --optimizer sgd and --momentum > 0"),
    (["--hidden", "4", "--hidden-grid", "8"], "give --hidden (one network) or --hidden-grid"),
    (["--hidden-grid", "4,0"], "widths must be >= 1"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--lr"], "expected at least one argument"),
    (["--optimizer", "sgd", "rmsprop"], "unknown optimizer 'rmsprop'"),
])
def test_bad_grids_are_refused_before_anything_is_written(tmp_path, capsys, option_args,
                                                          message):
    out = tmp_path / "out"
    args = [*SWEEP, *(["--hidden", "4"] if "--hidden" not in option_args else []),
            *option_args, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
