"""A sweep's results as text (report/sweep.py): results.md and the terminal's view, from
results.json's content."""

from __future__ import annotations

import copy

from handgrad.report.sweep import results_markdown, terminal_text, write_results_md

ROW = {"optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0, "momentum": 0.9, "batch_size": 64,
       "hidden": "16", "status": "completed", "train_loss": 0.5, "val_loss": 0.4,
       "val_accuracy": 0.9, "run_dir": "s/configs/a"}
SUMMARY = {
    "select_by": "val_loss", "swept": ["lr"],
    "hyperparameters": ["optimizer", "lr", "weight_decay", "momentum", "batch_size", "hidden"],
    "fixed": {"dataset": "digits", "classes": None, "activation": "relu"},
    "configs": [ROW, {**ROW, "lr": 50.0, "status": "diverged", "train_loss": None,
                      "val_loss": None, "val_accuracy": None, "run_dir": "s/configs/b"}],
    "selected": {**ROW, "test_loss": 0.41, "test_accuracy": 0.88,
                 "confusion_matrix": [[5, 1], [2, 7]], "class_names": ["0", "1"]},
}


def test_results_md_marks_the_selected_config_and_gives_its_test_metrics(tmp_path):
    text = write_results_md(tmp_path, SUMMARY).read_text()
    assert text == results_markdown(SUMMARY)
    assert text.count("| * |") == 1 and "| * | sgd | 0.01 |" in text
    assert "fixed: dataset=digits, classes=all, activation=relu" in text
    assert "Selected: lr=0.01: test loss 0.4100, test accuracy 0.8800." in text
    assert "diverged" in text


def test_what_the_text_says_when_the_selected_run_is_elsewhere_or_none_completed():
    elsewhere = copy.deepcopy(SUMMARY)
    elsewhere["selected"].update(test_loss=None, test_accuracy=None, run_dir="b:/x/configs/a")
    assert "on another machine (b:/x/configs/a)" in results_markdown(elsewhere)
    assert "on another machine (b:/x/configs/a)" in terminal_text(elsewhere)
    none = {**SUMMARY, "selected": None}
    assert "No config completed: nothing selected." in results_markdown(none)
    assert "| * |" not in results_markdown(none)
    assert "no config completed" in terminal_text(none)


def test_the_terminal_shows_every_config_the_selection_and_the_confusion_matrix():
    lines = terminal_text(SUMMARY).splitlines()
    assert lines[0].split()[:6] == ["optimizer", "lr", "weight_decay", "momentum",
                                    "batch_size", "hidden"]
    assert sum(line.lstrip().startswith("*") for line in lines) == 1
    assert "selected by val_loss (* above); training loss is never used" in lines
    assert any(line.startswith("test loss 0.41") for line in lines)
    assert any("true \\ predicted" in line for line in lines)
