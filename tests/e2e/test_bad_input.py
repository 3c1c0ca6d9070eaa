"""Bad input, corrupt files and reused folders through the command line: one line on stderr,
exit code 2, no traceback, and nothing written or left looking current."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handgrad.cli.main import main
from handgrad.run.rundir import RunDir, lock_folder, read_json
from handgrad.run.train import Observer, train
from support import DIGITS


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished digits run (3 vs 8), copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *DIGITS, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.mark.parametrize("file,change,fragment", [
    ("config.json", lambda c: {}, "config.json: missing config"),
    ("config.json", lambda c: {**c, "config": {**c["config"], "lr": "abc"}},
     "lr must be a finite number, got 'abc'"),
    ("config.json", lambda c: {**c, "config": {**c["config"], "hidden": [8]}},
     "'sizes' [64, 16, 2] disagree with hidden [8]"),
    ("config.json", lambda c: {**c, "sizes": "64,16,2"}, "'sizes' must be a list"),
    ("config.json", lambda c: [c], "expected a JSON object, got list"),
    ("results.json", lambda r: None, "results.json: expected a JSON object, got null"),
    ("results.json", lambda r: {**r, "status": "great"}, "status must be one of"),
    ("results.json", lambda r: {**r, "val_accuracy": 7}, "'val_accuracy' must be"),
    ("results.json", lambda r: {**r, "weights_sha256": "xyz"}, "64 hex digits"),
    ("results.json", lambda r: {**r, "weights_sha256": None}, "records no weights_sha256"),
    ("results.json", lambda r: {**r, "status": "diverged"}, "no weights to evaluate"),
])
def test_evaluate_refuses_bad_records(run, capsys, file, change, fragment):
    _edit_json(run / file, change)
    one_line_error(capsys, main(["evaluate", str(run)]), fragment)


@pytest.mark.parametrize("file,content,fragment", [
    ("config.json", b"{not json", "config.json: not valid JSON"),
    ("config.json", b'{"a": NaN}', "not valid JSON"),
    ("results.json", b"\xff\xfe", "results.json: not valid JSON"),
    ("results.json", b"[" * 100_000, "not valid JSON"),
    ("weights.safetensors", b"\x00" * 20, "not a valid safetensors file"),
])
def test_evaluate_refuses_corrupt_files(run, capsys, file, content, fragment):
    (run / file).write_bytes(content)
    one_line_error(capsys, main(["evaluate", str(run)]), fragment)


def test_evaluate_refuses_a_run_that_did_not_finish(run, capsys):
    (run / "results.json").unlink()
    one_line_error(capsys, main(["evaluate", str(run)]), "the run did not finish")


def test_a_bit_flip_in_the_weights_is_refused(run, capsys):
    path = run / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-50] ^= 0x01  # one bit of one weight: the file still parses
    path.write_bytes(bytes(data))
    one_line_error(capsys, main(["evaluate", str(run)]), "sha256", "changed or corrupted")


def test_weights_from_another_run_are_refused_by_their_metadata(run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", *DIGITS, "--classes", "1", "7", "--out", str(other)]) == 0
    capsys.readouterr()
    shutil.copy(other / "weights.safetensors", run / "weights.safetensors")
    shutil.copy(other / "results.json", run / "results.json")
    one_line_error(capsys, main(["evaluate", str(run)]), "metadata does not match",
                   "classes '1,7'")


def test_train_refuses_a_finished_run_of_other_settings(run, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code = main(["train", *DIGITS, "--classes", "1", "7", "--out", str(run)])
    one_line_error(capsys, code, "holds a run with other settings", "['1', '7'] now")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_folder_of_something_else_is_refused(tmp_path, capsys, command):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    one_line_error(capsys, main([command, *DIGITS, "--out", str(out)]),
                   "not empty", "thesis.tex")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_compare_refuses_a_training_run_folder(run, capsys):
    one_line_error(capsys, main(["compare", *DIGITS, "--out", str(run)]), "not empty")


def test_a_file_as_out_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    one_line_error(capsys, main(["train", *DIGITS, "--out", str(tmp_path / "f")]),
                   "is not a directory")


class _Killed(Exception):
    pass


class _KillAtEpoch(Observer):
    def epoch_start(self, epoch: int, steps: int) -> None:
        if epoch == 2:
            raise _Killed  # the state a kill leaves: config.json and one epoch of metrics


def test_rerun_with_the_same_settings_clears_the_old_results_first(run, capsys):
    """A rerun stopped after it started never leaves the earlier run's results current."""
    (run / ".metrics.csv.k1ll3d").write_text("epoch\n")  # a temporary of a killed run
    config = RunDir(run).read_config()
    with pytest.raises(_Killed):
        train(config, out_dir=run, observer=_KillAtEpoch())
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "layers.csv", "metrics.csv"]
    assert len(RunDir(run).read_history()) == 1
    one_line_error(capsys, main(["evaluate", str(run)]), "the run did not finish")


def test_rerun_with_the_same_settings_is_identical(run, finished):
    assert main(["train", *DIGITS, "--out", str(run)]) == 0
    assert (run / "weights.safetensors").read_bytes() == \
        (finished / "weights.safetensors").read_bytes()
    assert read_json(run / "results.json") == read_json(finished / "results.json")


@pytest.mark.parametrize("argv,fragment", [
    (["train", *DIGITS, "--hidden", "1000000", "1000000"], "--hidden 1000000 1000000"),
    (["gradcheck", "--sizes", "1000000", "1000000", "2"], "gradcheck --sizes 1000000"),
    (["train", *DIGITS, "--val-fraction", "0.001"], "the validation split would have 0"),
    (["train", *DIGITS, "--val-fraction", "0.999"], "the training split would have 0"),
])
def test_impossible_sizes_are_refused_before_anything(tmp_path, capsys, argv, fragment):
    out = tmp_path / "r"
    argv = [*argv, "--out", str(out)] if argv[0] == "train" else argv
    one_line_error(capsys, main(argv), fragment, "use")
    assert not out.exists()


def test_train_into_a_closed_pipe_keeps_training_quietly(tmp_path):
    out = tmp_path / "r"
    script = (f"{sys.executable} -m handgrad train {' '.join(DIGITS[:-1])} --out {out} "
              "| true; exit ${PIPESTATUS[0]}")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert read_json(out / "results.json")["status"] == "completed"


def test_compare_refuses_other_settings_before_training_either_engine(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *DIGITS, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    one_line_error(capsys, main(["compare", *DIGITS, "--epochs", "1", "--lr", "0.02", "--out",
                                 str(out)]), "manual: holds a run with other settings",
                   "lr: 0.01 there, 0.02 now")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("file,old,new,fragment", [
    ("results.json", '"val_loss": ', '"val_loss": 1' + "0" * 400 + ", \"x\": ", "too large"),
    ("config.json", '"lr": 0.01', '"lr": 1e999', "number 1e999 is too large"),
    ("config.json", '"sizes": [\n    64,\n    16', '"sizes": [\n    64,\n    1099511627776',
     "'sizes' must be a list of at least two positive widths"),
])
def test_absurd_numbers_in_records_are_one_line_errors(run, capsys, file, old, new, fragment):
    path = run / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    one_line_error(capsys, main(["evaluate", str(run)]), fragment)


@pytest.mark.parametrize("key,value", [("loss", "sse"), ("standardize", True),
                                       ("dtype", "float64"), ("val_fraction", 0.2),
                                       ("seed", 1)])
def test_evaluate_refuses_settings_edited_after_training(run, capsys, key, value):
    _edit_json(run / "config.json", lambda c: {**c, "config": {**c["config"], key: value}})
    one_line_error(capsys, main(["evaluate", str(run)]), "config.json was changed after the run")


def test_evaluate_refuses_results_without_the_config_hash(run, capsys):
    _edit_json(run / "results.json", lambda r: {k: v for k, v in r.items()
                                                if k != "config_sha256"})
    one_line_error(capsys, main(["evaluate", str(run)]), "records no config_sha256")


@pytest.mark.parametrize("argv,fragment", [
    (["--lr", "1e39"], "--lr 1e+39 is beyond the largest float32"),
    (["--weight-decay", "1e39"], "--weight-decay 1e+39 is beyond the largest float32"),
    (["--optimizer", "adam", "--lr", "1e39"], "--lr 1e+39 is beyond"),
])
@pytest.mark.parametrize("command", ["train", "compare"])
def test_numbers_beyond_the_dtype_are_refused_before_anything(tmp_path, capsys, argv, fragment,
                                                              command):
    out = tmp_path / "r"
    one_line_error(capsys, main([command, *DIGITS, *argv, "--out", str(out)]), fragment)
    assert not out.exists()


def test_a_huge_weight_decay_is_named_when_the_run_diverges(tmp_path, capsys):
    out = tmp_path / "r"
    main(["train", *DIGITS, "--epochs", "1", "--optimizer", "adamw", "--weight-decay", "1e30",
          "--out", str(out)])
    assert "weight_decay" in read_json(out / "results.json")["message"]  # the library's words
    assert "lower --weight-decay than 1e+30" in capsys.readouterr().err  # the CLI's


def test_evaluate_on_a_sweep_folder_points_to_its_runs(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text("{}")
    one_line_error(capsys, main(["evaluate", str(out)]), "is a sweep folder", "configs")


def test_a_fifo_as_a_run_file_is_refused_without_blocking(run, capsys):
    (run / "results.json").unlink()
    os.mkfifo(run / "results.json")
    one_line_error(capsys, main(["evaluate", str(run)]), "results.json: is not a regular file")


@pytest.mark.parametrize("argv", [["train", *DIGITS, "--out", ""],
                                  ["compare", *DIGITS, "--out", " "], ["evaluate", ""]])
def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, main(argv), "an empty path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_folder_being_written_is_refused(tmp_path, capsys, command):
    out = tmp_path / "r"
    with lock_folder(out):
        code = main([command, *DIGITS, "--epochs", "1", "--out", str(out)])
        one_line_error(capsys, code, "another handgrad command is writing this folder")
    assert list(out.iterdir()) == []
    assert main([command, *DIGITS, "--epochs", "1", "--out", str(out)]) == 0
