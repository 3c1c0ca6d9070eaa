"""The sandbox attacked: what a child sees of the machine, results it did not earn, limits
named as limits, grader failures never blamed on a student, nothing left after a killed
grader, and a real refusal of namespaces (a seccomp filter, as Docker's default profile)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import handgrad
from handgrad.cli import main
from handgrad.grade.grader import grade_file
from handgrad.grade.sandbox import isolate, server
from handgrad.grade.sandbox.isolate import Limits

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"
REFUSE = Path(__file__).resolve().parent / "refuse_namespaces.py"
RIGHT = (SUBMISSIONS / "correct_plain.py").read_text().split("# expect: pass", 1)[1]
HANDGRAD = [sys.executable, "-m", "handgrad"]


def _held(result) -> bool:
    return all(result.isolation[k] for k in ("no_network", "read_only_files", "own_processes"))


def test_the_allow_list_is_computed_from_sys_path_and_the_prefixes(tmp_path):
    """Wherever the interpreter's packages are (under /tmp here), they are shown; a folder
    on sys.path that holds no installed package (the current folder, tests/) is not."""
    prefix = tmp_path / "venv"
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    conda = tmp_path / "conda" / "lib" / "python3.11" / "site-packages"
    conda.mkdir(parents=True)
    project = tmp_path / "class"
    project.mkdir()
    link = tmp_path / "linked-venv"
    link.symlink_to(prefix)
    found = isolate._allowed((str(site), str(conda), str(project), "", "relative"),
                             (str(link), "/usr", "/usr", "/usr"))
    assert {str(site), str(conda), str(link), str(prefix)} <= set(found)
    assert str(project) not in found and str(tmp_path) not in found
    assert os.path.dirname(handgrad.__file__) in found  # an editable install: only handgrad
    assert str(Path(handgrad.__file__).parents[1]) not in found
    assert all(os.path.lexists(p) for p in found)


def test_a_submission_sees_only_the_allow_list(tmp_path):
    """hostile_looks_around prints what it can see: the root holds the system's folders,
    the sandbox and the tops of the allowed paths; its folder (HOME) is empty, /tmp too but
    for allowed paths under it; its own processes only; its descriptors: stdin, the
    output, the channel."""
    result = grade_file(SUBMISSIONS / "hostile_looks_around.py", importable=False,
                        limits=Limits(timeout=20, output_kb=64))
    if not _held(result):
        pytest.skip("this system refuses the namespaces")
    assert result.passed
    seen = json.loads(result.output.split("SEEN ", 1)[1].splitlines()[0])
    tops = {p.split("/")[1] for p in isolate.allowed_paths()}
    assert set(seen["/"]) <= tops | {"dev", "etc", "proc", "sandbox", "tmp"}
    under_tmp = {Path(p).relative_to("/tmp").parts[0] for p in isolate.allowed_paths()
                 if p.startswith("/tmp/")}  # a clone and its venv under /tmp: shown, alone
    assert set(seen["/tmp"]) == under_tmp
    assert seen["/sandbox/work"] == [] and seen["cwd"] == "/sandbox/work"
    assert seen["/sandbox"] == ["submission", "work"]
    assert seen["/dev"] == ["null", "random", "urandom", "zero"]
    assert seen["/etc"] == ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime"]
    assert seen["pids"] == ["1"]
    assert sorted(seen["fds"]) == ["0", "1", "2", next(iter(set(seen["fds"]) - {"0", "1", "2"}))]
    assert [v.split(":")[0] for k, v in seen["fds"].items() if k not in "012"] == ["socket"]
    home = Path.home()
    if isinstance(seen.get(str(home)), list):  # the home holds the interpreter: only that
        allowed = {Path(p).relative_to(home).parts[0] for p in isolate.allowed_paths()
                   if Path(p).is_relative_to(home) and p != str(home)}
        assert set(seen[str(home)]) <= allowed


def test_a_classmates_file_cannot_be_read_during_grade(tmp_path):
    """bob knows where alice's solution is and imports it: in the child it is not there."""
    alice = tmp_path / "class" / "alice"
    alice.mkdir(parents=True)
    (alice / "solution.py").write_text(RIGHT)
    (tmp_path / "class" / "bob.py").write_text(
        "import glob, importlib.util, os\n"
        f"print('CLASS', sorted(glob.glob({str(tmp_path / 'class')!r} + '/*')))\n"
        f"spec = importlib.util.spec_from_file_location('a', {str(alice / 'solution.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
        "backpropagation = module.backpropagation\n")
    out = tmp_path / "grades"
    assert main(["grade", str(tmp_path / "class"), "--out", str(out), "--jobs", "2",
                 "--timeout", "20"]) == 1
    entries = {e["id"]: e for e in json.loads((out / "grades.json").read_text())["submissions"]}
    if not entries["bob"]["result"]["isolation"]["read_only_files"]:
        pytest.skip("this system refuses mount namespaces")
    assert entries["alice"]["passed"]
    assert entries["bob"]["kind"] == "load" and "FileNotFoundError" in entries["bob"]["error"]
    assert "CLASS []" in entries["bob"]["result"]["output"]


def test_a_venv_under_tmp_grades_right_work_as_right(tmp_path):
    """The failure of the issue: the interpreter's packages under /tmp. A venv made there,
    seeing this one's packages through a .pth file, with a module of its own that the
    submission imports lazily inside its function."""
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python*/site-packages"))
        ours = [p for p in sys.path if p.endswith("site-packages")]
        (site / "ours.pth").write_text("\n".join([*ours, str(Path(handgrad.__file__).parents[1])]))
        (site / "lazy_helper_under_tmp.py").write_text("FACTOR = 2\n")
        sub = tmp_path / "lazy.py"
        sub.write_text(RIGHT.replace("dL_da = 2 * (y_pred - y_true)",
                                     "from lazy_helper_under_tmp import FACTOR\n"
                                     "    dL_da = FACTOR * (y_pred - y_true)"))
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "handgrad",
                               "check-backprop", str(sub), "--timeout", "30"],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "PASS" in done.stdout
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_results_the_runner_did_not_send_fail(tmp_path):
    """Forged at import (a result frame, then exit 0), forged from a thread while the
    function runs (two results), exit 0 at import (no result): each fails, none passes."""
    for name, kind in (("hostile_forge_at_import.py", "forged"),
                       ("hostile_forge_from_thread.py", "forged"),
                       ("hostile_sys_exit_at_import.py", "exited"),
                       ("hostile_fake_result.py", "exited")):
        result = grade_file(SUBMISSIONS / name, importable=False, limits=Limits(timeout=20))
        assert not result.passed and result.score == 0, name
        assert result.diagnosis().kind == kind, (name, result.diagnosis())
    assert "code 0" in grade_file(SUBMISSIONS / "hostile_sys_exit_at_import.py").error


def test_a_cpu_limit_is_named_cpu_even_past_sigxcpu(tmp_path):
    """Threads burning CPU with SIGXCPU ignored: the hard limit's SIGKILL ends them, and
    the result says `cpu`, with none of handgrad's own traceback in what it printed."""
    (tmp_path / "burn.py").write_text(
        "import signal, threading, torch\n"
        "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "def burn():\n    a = torch.rand(200, 200)\n    while True:\n        a @ a\n"
        "def backpropagation(model, y_true, y_pred):\n"
        "    for _ in range(3):\n        threading.Thread(target=burn, daemon=True).start()\n"
        "    burn()\n")
    result = grade_file(tmp_path / "burn.py", limits=Limits(timeout=60, cpu_s=2))
    d = result.diagnosis()
    assert d.kind == "cpu" and "CPU time limit of 2 s" in d.detail
    assert result.isolation["exit_code"] == -signal.SIGKILL
    assert "Traceback" not in result.output and "handgrad" not in result.output
    (tmp_path / "spin.py").write_text("def backpropagation(model, y_true, y_pred):\n"
                                      "    while True:\n        pass\n")
    result = grade_file(tmp_path / "spin.py", limits=Limits(timeout=60, cpu_s=1))
    assert result.diagnosis().kind == "cpu"  # by SIGXCPU, or (PID 1 ignores it) the hard SIGKILL
    assert result.isolation["exit_code"] in (-signal.SIGXCPU, -signal.SIGKILL)


def _script(tmp_path: Path, name: str, breakage: str) -> Path:
    """A script that runs handgrad's CLI after `breakage` (Python) broke the grader."""
    script = tmp_path / name
    script.write_text(f"import os, sys, time\n{breakage}\n"
                      "from handgrad.cli.main import main\nsys.exit(main(sys.argv[1:]))\n")
    return script


HIDE_PACKAGES = """import handgrad.grade.sandbox.isolate as isolate
whole = isolate.allowed_paths
isolate.allowed_paths = lambda: [p for p in whole() if 'site-packages' not in p
                                 and not p.startswith(sys.prefix)]"""
KILL_SERVER = """import handgrad.grade.batch as batch
from handgrad.grade.sandbox import server
one = batch._grade_one
def _grade_one(*args):
    os.kill(server._SERVER[0][0], 9)
    time.sleep(0.2)
    return one(*args)
batch._grade_one = _grade_one"""


def test_a_broken_child_environment_is_a_grader_error_never_a_fail(tmp_path):
    """The child cannot see this Python's packages (as the old sandbox hid a venv under
    /tmp): check-backprop says, in one line, that the grader failed; exit 2, no FAIL."""
    script = _script(tmp_path, "hide.py", HIDE_PACKAGES)
    done = subprocess.run([sys.executable, str(script), "check-backprop",
                           str(SUBMISSIONS / "correct_plain.py")], capture_output=True, text=True)
    if "NOT held" in done.stdout:
        pytest.skip("this system refuses mount namespaces: nothing to break")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the grader failed (not the submission)" in lines[0]
    assert "cannot see" in lines[0] and "FAIL" not in done.stdout + done.stderr
    done = subprocess.run([sys.executable, str(script), "grade",
                           str(SUBMISSIONS / "correct_plain.py"), "--out", str(tmp_path / "g")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "the grader failed (not the submissions)" in done.stderr
    assert not (tmp_path / "g").exists()  # the probe found it before grading anyone


def test_a_dead_grading_server_leaves_submissions_not_graded_and_graded_next_run(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("correct_plain.py", "bug_wrong_sign.py"):
        shutil.copy(SUBMISSIONS / name, folder / name)
    out = tmp_path / "grades"
    script = _script(tmp_path, "kill.py", KILL_SERVER)
    done = subprocess.run([sys.executable, str(script), "grade", str(folder), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    entries = json.loads((out / "grades.json").read_text())["submissions"]
    assert {e["kind"] for e in entries} == {"not_graded"} and not any(e["passed"] for e in entries)
    assert all("grading server" in e["error"] for e in entries)
    assert "NOT graded" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([*HANDGRAD, "grade", str(folder), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "(unchanged, kept)" not in done.stdout  # graded again
    assert "2 grade(s) changed since the last run" in done.stdout
    changes = (out / "changes.csv").read_text().splitlines()
    assert changes[0] == "id,old_score,new_score,old_kind,new_kind"
    assert "correct_plain,0.0,100.0,not_graded," in changes


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("name, sig", [("hostile_sleeps.py", signal.SIGKILL),
                                       ("hostile_infinite_loop.py", signal.SIGKILL),
                                       ("hostile_sleeps.py", signal.SIGTERM),
                                       ("hostile_infinite_loop.py", signal.SIGINT)])
def test_nothing_outlives_a_killed_grader(name, sig, tmp_path):
    """The grader killed while the submission sleeps or spins: its server, keeper and the
    submission's process end with it, and no folder of it is left in /tmp."""
    grader = subprocess.Popen([*HANDGRAD, "check-backprop", str(SUBMISSIONS / name),
                               "--timeout", "120"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        while len(_descendants(grader.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the submission is in its function by now
        started = _descendants(grader.pid)
        assert len(started) >= 3, started
        grader.send_signal(sig)
        grader.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_running(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in started if _running(p)]
        assert not list(Path(tempfile.gettempdir()).glob(f"{server.PREFIX}{grader.pid}-*"))
        assert list(tmp_path.iterdir()) == []  # its TMPDIR: no pymp-*, no handgrad-grade-*
        if sig != signal.SIGKILL:
            assert grader.returncode == 130
    finally:
        grader.kill()


def test_the_next_run_removes_what_a_killed_grader_left(tmp_path):
    proc = subprocess.Popen(["true"])  # a pid that has ended
    proc.wait()
    left = Path(tempfile.gettempdir()) / f"{server.PREFIX}{proc.pid}-0123456789ab"
    (left / "sub").mkdir(parents=True)
    mine = Path(tempfile.gettempdir()) / f"{server.PREFIX}{os.getpid()}-0123456789ab"
    mine.mkdir()
    try:
        removed = server.remove_leftovers()
        assert str(left) in removed and not left.exists() and mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def test_where_namespaces_are_refused_check_says_so_and_grade_refuses(tmp_path):
    """A seccomp filter refuses unshare, mount and pivot_root for real (as Docker's default
    profile): check-backprop grades and says in one line what did not hold; grade refuses
    without --unconfined, and grades with it."""
    run = [sys.executable, str(REFUSE)]
    done = subprocess.run([*run, "check-backprop", str(SUBMISSIONS / "correct_plain.py")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("isolation:") and "NOT held: no network, only its own files, own " \
                                                 "processes" in first
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(SUBMISSIONS / "correct_plain.py", folder / "alice.py")
    done = subprocess.run([*run, "grade", str(folder), "--out", str(tmp_path / "g")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--unconfined" in done.stderr
    assert "one submission per container" in done.stderr
    assert not (tmp_path / "g").exists()
    grader = subprocess.Popen([*run, "grade", str(folder), "--out", str(tmp_path / "g"),
                               "--unconfined"], stdout=subprocess.PIPE, text=True)
    out, _ = grader.communicate()
    assert grader.returncode == 0 and "1 of 1 passed" in out
    assert not list(Path(tempfile.gettempdir()).glob(f"{server.PREFIX}{grader.pid}-*"))


def test_where_namespaces_are_refused_a_killed_graders_folder_goes_with_the_next_run(tmp_path):
    """Without a mount namespace the child works in TMPDIR/handgrad-grade-<pid>-*: SIGKILL
    leaves it (and no process); the next grader removes it before grading."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    grader = subprocess.Popen([sys.executable, str(REFUSE), "check-backprop",
                               str(SUBMISSIONS / "hostile_sleeps.py"), "--timeout", "120"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(f"{server.PREFIX}*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        started = _descendants(grader.pid)
        grader.kill()
        grader.wait(timeout=30)
    finally:
        grader.kill()
    left = list(tmp_path.glob(f"{server.PREFIX}{grader.pid}-*"))
    assert len(left) == 1
    deadline = time.monotonic() + 10
    while any(_running(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started and not [p for p in started if _running(p)]
    done = subprocess.run([*HANDGRAD, "check-backprop", str(SUBMISSIONS / "correct_plain.py")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0 and not left[0].exists()


def load_and_run_all(chunks, folder, function, specs):
    """An entry of the other form: one function, run in the child, that loads and runs."""
    from handgrad.grade.sandbox import runner
    from handgrad.grade.submission import load_function

    fn = load_function(chunks, function, folder)
    return {"status": "ok", "results": [runner.run_case(fn, spec) for spec in specs],
            "error": None}


def test_an_entry_function_runs_in_the_child_and_its_result_is_judged():
    from handgrad.grade import grader, judge
    from handgrad.grade.submission import read_source

    salt = judge.case_salt(("sse",))
    path = SUBMISSIONS / "bug_wrong_sign.py"
    outcome = isolate.run_isolated(read_source(path), None, "backpropagation",
                                   grader._payload(("sse",), salt), Limits(timeout=20),
                                   submission=path, entry=load_and_run_all)
    assert outcome.status == "ok" and len(outcome.results) == 22
    assert judge.judge_outputs(outcome.results, "sse", False, salt).diagnosis().kind == \
        "wrong_sign"
