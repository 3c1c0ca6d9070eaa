"""Every option a command is given reaches every config it runs, or is refused in one line."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from handgrad.cli.main import main
from handgrad.cli.parser import build_parser, parse
from handgrad.run.rundir import read_json

SWEEP = ["sweep", "--dataset", "digits", "--quiet"]

# (TrainConfig field, the options that set it, the value every config.json must record)
OPTIONS = [
    ("classes", ["--classes", "1", "7"], ["1", "7"]),
    ("standardize", ["--standardize"], True),
    ("val_fraction", ["--val-fraction", "0.2"], 0.2),
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
    ("keep_denormals", ["--keep-denormals"], True),
]
# sweep's alone: reproduce is the exercise's MLP
SWEEP_ONLY = [("model", ["--model", "mlp-bn"], "mlp-bn")]
# options of the grid commands that are not training settings
NOT_TRAINING = {"help", "out", "quiet", "workers", "storage", "select_by", "download",
                "dataset", "data_dir"}


DEFAULTS = {"--epochs": "1", "--hidden": "4", "--lr": "0.02", "--workers": "1"}


def _sweep_args(option_args: list[str], defaults: dict[str, str] = DEFAULTS) -> list[str]:
    """A tiny sweep with `option_args`, and the defaults that they do not set."""
    given = {a.replace("-grid", "") for a in option_args if a.startswith("--")}
    fill = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    return [*SWEEP, *fill, *option_args]


def _recorded(out) -> list[dict]:
    configs = sorted((out / "configs").glob("*/config.json"))
    assert configs, "the sweep ran no config"
    return [read_json(p)["config"] for p in configs]


def test_every_training_option_of_the_grid_commands_is_in_the_table():
    for command in ("sweep", "reproduce"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        dests = {a.dest for a in sub._actions} - NOT_TRAINING - {"hidden_grid", "data_dir"}
        covered = {name for name, _, _ in OPTIONS + (SWEEP_ONLY if command == "sweep" else [])}
        assert dests <= covered, f"{command}: options missing from OPTIONS: {dests - covered}"


@pytest.mark.parametrize("name,option_args,value", OPTIONS + SWEEP_ONLY,
                         ids=[" ".join(o) for _, o, _ in OPTIONS + SWEEP_ONLY])
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


def test_the_issue_command_trains_adam_batch_7_hidden_16_8_and_shows_it(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*SWEEP, "--epochs", "1", "--workers", "1", "--lr", "0.01", "--optimizer",
                 "adam", "--batch-size", "7", "--hidden-grid", "16,8", "--out", str(out)]) == 0
    (config,) = _recorded(out)
    assert (config["optimizer"], config["batch_size"], config["hidden"]) == ("adam", 7, [16, 8])
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert header.split()[:7] == ["optimizer", "lr", "weight_decay", "momentum", "batch_size",
                                  "hidden", "betas"]
    assert row.split()[1:8] == ["adam", "0.01", "0", "0", "7", "16,8", "0.9,0.999"]
    (summary_row,) = read_json(out / "results.json")["configs"]
    assert {k: summary_row[k] for k in ("optimizer", "batch_size", "hidden")} == {
        "optimizer": "adam", "batch_size": 7, "hidden": "16,8"}
    assert "| adam | 0.01 | 0 | 0 | 7 | 16,8 | 0.9,0.999 |" in (out / "results.md").read_text()


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
    if command == "train":
        single = {k: v for k, v in DEFAULTS.items() if k != "--workers"}
        args = ["train", *_sweep_args(option_args, single)[1:]]
    else:
        args = _sweep_args(option_args)
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
    (["--hidden-grid", ","], "',' holds no width"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--lr"], "expected at least one argument"),
    (["--optimizer", "sgd", "rmsprop"], "unknown optimizer 'rmsprop'"),
])
def test_bad_grids_are_refused_before_anything_is_written(tmp_path, capsys, option_args,
                                                          message):
    out = tmp_path / "out"
    no_lr = {k: v for k, v in DEFAULTS.items() if k != "--lr"}
    assert main([*_sweep_args(option_args, no_lr), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["train", "--dataset", "digits", "--betas", "0.8", "0.9"],
     "--betas applies to --optimizer adam or adamw only"),
    (["sweep", "--dataset", "digits", "--lr", "0.1", "--betas", "0.8", "0.9"],
     "--betas applies to --optimizer adam or adamw only"),
    (["train", "--dataset", "digits", "--download"], "--download applies to cifar10 only"),
    (["compare", "--dataset", "digits", "--engine", "autograd"],
     "unrecognized arguments: --engine autograd"),
])
def test_options_that_would_do_nothing_are_refused(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_data_dir_reaches_every_config_of_a_cifar_sweep():
    args = parse(["sweep", "--data-dir", "elsewhere", "--lr", "0.01", "0.1"])
    assert {args.spec.config_for(v).data_dir for v in args.spec.configs()} == {"elsewhere"}


@pytest.mark.parametrize("fraction,split", [("0.001", "validation"), ("0.999", "training"),
                                            ("0.0035", "validation"), ("0.9965", "training")])
def test_a_val_fraction_that_empties_a_split_of_a_class_is_refused(tmp_path, capsys, fraction,
                                                                   split):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "4", "--epochs", "1",
                 "--val-fraction", fraction, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"the {split} split would have 0 of the" in err
    assert "above 0.003597 and below 0.9964" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("fraction", ["0.0036", "0.996"])
def test_the_extreme_val_fractions_that_leave_one_image_work(tmp_path, fraction):
    assert main(["train", "--dataset", "digits", "--hidden", "4", "--epochs", "1", "--quiet",
                 "--val-fraction", fraction, "--out", str(tmp_path / "run")]) == 0


def test_a_reader_that_goes_away_does_not_stop_training_or_read_as_bad_input(tmp_path):
    """`handgrad train … | head -1`: the run goes on quietly and completes; no traceback,
    no "Broken pipe", not exit 2."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "handgrad", "train", "--dataset", "digits", "--hidden", "4",
         "--epochs", "100", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("epoch 1:")
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    assert proc.stderr.read() == ""
    assert read_json(out / "results.json")["epochs_completed"] == 100


def test_gradcheck_of_a_network_that_cannot_fit_is_one_line(capsys):
    assert main(["gradcheck", "--sizes", "1000000", "1000000", "2"]) == 2
    err = capsys.readouterr().err
    assert "gradcheck --sizes 1000000 1000000 2: needs about" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--sizes", "5"], "sizes must be at least two positive widths"),
    (["--sizes", "5", "0", "2"], "argument --sizes: must be >= 1, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--max-entries", "-3"], "argument --max-entries: must be >= 1, got -3"),
    (["--seed", "1e20"], "argument --seed: '1e20' is not an integer"),
])
def test_gradcheck_bad_values_are_one_line(capsys, args, message):
    assert main(["gradcheck", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_library_errors_name_settings_and_the_cli_writes_flags():
    from handgrad.cli.exits import flag_message
    from handgrad.engine.errors import SettingError

    error = SettingError("nesterov needs optimizer sgd and momentum > 0, got 'momentum'",
                         "nesterov", "optimizer", "momentum")
    assert flag_message(error) == ("--nesterov needs --optimizer sgd and --momentum > 0, got "
                                   "'momentum'")  # a quoted value stays as it was
    try:
        try:
            raise SettingError("weight_decay must be >= 0, got -1", "weight_decay")
        except ValueError as e:
            raise ValueError(f"config weight_decay=-1: {e}") from None
    except ValueError as wrapped:
        assert flag_message(wrapped) == ("config weight_decay=-1: --weight-decay must be >= 0, "
                                         "got -1")
    assert flag_message(ValueError("unknown optimizer 'rmsprop'")) == "unknown optimizer 'rmsprop'"


@pytest.mark.parametrize("flag, value", [("--timeout", "inf"), ("--timeout", "nan"),
                                         ("--cpu", "99999999999999999999"),
                                         ("--memory", "99999999999999999999")])
def test_a_grading_limit_the_system_cannot_hold_is_refused_naming_the_flag(flag, value,
                                                                          capsys, tmp_path):
    """inf crashed with a traceback, nan and a huge --cpu with a message naming no flag
    (the huge one blamed on the grader), after the grading server had started."""
    (tmp_path / "a.py").write_text("def backpropagation(model, y_true, y_pred):\n    pass\n")
    assert main(["check-backprop", str(tmp_path / "a.py"), flag, value]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and flag in err and value in err


@pytest.mark.parametrize("command, flag", [("grade", "--out"),
                                           ("check-backprop", "--gradescope")])
def test_an_output_path_under_a_file_is_refused_before_grading(command, flag, capsys,
                                                               tmp_path):
    """It graded the whole class first, then failed with "[Errno 20] Not a directory" (or
    "[Errno 17] File exists" for --gradescope), naming no flag."""
    (tmp_path / "a.py").write_text("def backpropagation(model, y_true, y_pred):\n    pass\n")
    (tmp_path / "afile").write_text("")
    target = tmp_path / ("a.py" if command == "check-backprop" else "")
    assert main([command, str(target), flag, str(tmp_path / "afile" / "x")]) == 2
    captured = capsys.readouterr()
    assert flag in captured.err and "Traceback" not in captured.err
    assert "[1/1]" not in captured.out + captured.err and "PASS" not in captured.out
