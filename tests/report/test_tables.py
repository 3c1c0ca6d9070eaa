from __future__ import annotations

from handgrad.report.tables import (
    config_label,
    confusion_table,
    gap_table,
    html_table,
    markdown_table,
    selection_text,
    summary_table,
    text_table,
)


def test_the_test_metrics_appear_only_when_asked():
    summary = {"status": "completed", "epochs_completed": 2, "train_loss": 0.5,
               "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75,
               "test_loss": None, "test_accuracy": None}
    _, rows = summary_table(summary, test=False)
    assert [r[0] for r in rows] == ["status", "epochs_completed", "train_loss",
                                    "train_accuracy", "val_loss", "val_accuracy"]
    assert [r[0] for r in summary_table(summary)[1]][-2:] == ["test_loss", "test_accuracy"]


def test_gap_and_confusion_tables():
    gaps = [{"epoch": 1, "manual_train_loss": 0.7, "autograd_train_loss": 0.7,
             "manual_val_loss": 0.69, "autograd_val_loss": 0.69, "max_gap": 2e-8}]
    headers, rows = gap_table(gaps)
    assert headers[-1] == "largest gap" and rows == [[1, 0.7, 0.7, 0.69, 0.69, 2e-8]]
    assert "2.000e-08" in text_table(headers, rows)
    headers, rows = confusion_table([[5, 1], [0, 7]], ["3", "8"])
    assert headers == ["true \\ predicted", "3", "8"] and rows == [["3", 5, 1], ["8", 0, 7]]
    assert markdown_table(headers, rows).splitlines()[2] == "| 3 | 5 | 1 |"


def test_selection_names_the_metric_it_selected_by():
    sel = {"val_loss": 0.4123, "val_accuracy": 0.83}
    assert selection_text(sel, "val_loss") == "(validation loss 0.4123)"
    assert selection_text(sel, "val_accuracy") == (
        "(validation accuracy 0.83, validation loss 0.4123)")
    assert config_label({"lr": 0.01, "weight_decay": 0.0, "hidden": "16,8"}) == (
        "lr=0.01 weight_decay=0 hidden=16,8")


def test_html_table_escapes_every_cell():
    page = html_table(["<b>", "x"], [["<script>", 1.5]])
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page
    assert page.startswith("<table>") and "<td>1.5</td>" in page
