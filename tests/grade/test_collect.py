"""Which paths are submissions (`grade/collect.py`): files, student folders and folders of
them; the file of a folder that is graded; what is never a submission (links, FIFOs)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from handgrad.grade.collect import among_submissions, find_submissions, student_folder
from handgrad.grade.submission import SubmissionError

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"
DEF = "def backpropagation(model, y_true, y_pred):\n    pass\n"


def test_a_fifo_named_like_a_submission_is_not_one(tmp_path):
    """Opening a FIFO blocks until someone writes to it: `grade` hung forever hashing one."""
    shutil.copy(SUBMISSIONS / "correct_plain.py", tmp_path / "alice.py")
    os.mkfifo(tmp_path / "fifo.py")
    assert [s.id for s in find_submissions([tmp_path], "backpropagation")] == ["alice"]


def test_a_link_in_a_class_folder_is_not_followed(tmp_path):
    """A link could make the grader read a classmate's file (and pass with it) or any file
    it can read (shown back in the load error): links are not submissions, nor their files."""
    alice, mallory = tmp_path / "alice", tmp_path / "mallory"
    alice.mkdir()
    mallory.mkdir()
    shutil.copy(SUBMISSIONS / "correct_plain.py", alice / "solution.py")
    (mallory / "solution.py").symlink_to(alice / "solution.py")
    (tmp_path / "eve.py").symlink_to("/etc/passwd")
    subs = {s.id: s for s in find_submissions([tmp_path], "backpropagation")}
    assert sorted(subs) == ["alice", "mallory"]
    assert subs["mallory"].path is None and subs["mallory"].files == ()


def test_a_student_folder_is_graded_through_the_file_with_a_real_def(tmp_path):
    """A `def` beats an assignment, which beats a mention in a comment; among files that
    all define it, a conventional name (solution, submission, main) comes first."""
    (tmp_path / "a_notes.py").write_text("# backpropagation is in hw.py\n")
    (tmp_path / "b_alias.py").write_text("backpropagation = print\n")
    (tmp_path / "hw.py").write_text(DEF)
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "hw.cpython-311.pyc").write_bytes(b"\0")
    sub = student_folder(tmp_path, "backpropagation")
    assert sub.path == tmp_path / "hw.py" and sub.folder
    assert [f.name for f in sub.files] == ["a_notes.py", "b_alias.py", "helpers.py", "hw.py"]
    (tmp_path / "solution.py").write_text(DEF)
    assert student_folder(tmp_path, "backpropagation").path == tmp_path / "solution.py"
    (tmp_path / "hw.py").unlink()
    (tmp_path / "solution.py").unlink()
    assert student_folder(tmp_path, "backpropagation").path == tmp_path / "b_alias.py"


def test_the_same_name_twice_gets_numbered_ids_and_bad_paths_are_named(tmp_path):
    for folder in ("week1", "week2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "alice.py").write_text(DEF)
    subs = find_submissions([tmp_path / "week1", tmp_path / "week2"], "backpropagation")
    assert [s.id for s in subs] == ["alice", "alice-2"]
    assert among_submissions(tmp_path / "week1" / "alice.py", "backpropagation") is False
    (tmp_path / "week1" / "bob.py").write_text(DEF)
    assert among_submissions(tmp_path / "week1" / "alice.py", "backpropagation") is True
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "nowhere", "no such file or folder"),
                          (tmp_path / "notes.txt", "a .py file or a .ipynb"),
                          (tmp_path / "empty", "no .py or .ipynb submission")):
        with pytest.raises(SubmissionError, match=message) as e:
            find_submissions([path], "backpropagation")
        assert str(path) in str(e.value)
