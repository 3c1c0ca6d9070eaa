"""Sweeps shared by several machines through a real PostgreSQL server, started here on
127.0.0.1 in a temporary data directory (as user `postgres` when the tests run as root)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from handgrad.cli.main import main
from handgrad.run.config import TrainConfig
from handgrad.run.sweep import SweepSpec, config_key, open_storage, run_sweep, study_name

PASSWORD = "s3cret-Pw"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the PostgreSQL tests must run)")
    pytest.skip(reason)


def _as_postgres() -> list[str]:
    """The prefix that runs a command as a user PostgreSQL accepts (it refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root and there is no 'postgres' user to run the server")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres on a server of its own."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        _unavailable("PostgreSQL's initdb/pg_ctl are not on PATH")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("psycopg2 is not installed (pip install 'handgrad[postgres]')")
    prefix = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix="handgrad-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    data, pwfile, port = root / "data", root / "pw", _free_port()
    pwfile.write_text(PASSWORD + "\n")
    if prefix:
        shutil.chown(pwfile, "postgres", "postgres")
    run = dict(check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, "initdb", "-D", str(data), "-U", "postgres", "--pwfile",
                    str(pwfile), "--auth=scram-sha-256"], **run)
    subprocess.run([*prefix, "pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], **run)
    try:
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_a_wrong_password_is_one_line_that_never_shows_it(postgres_url, tmp_path, capsys):
    url = postgres_url.replace(PASSWORD, "wrong-Pw-42")
    args = ["sweep", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet",
            "--lr", "0.01", "--out", str(tmp_path / "s")]
    assert main([*args, "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "postgres:***@127.0.0.1" in err
    assert "wrong-Pw-42" not in err and "authentication failed" in err
    assert not (tmp_path / "s").exists()


BASE = TrainConfig(dataset="digits", hidden=(64,), epochs=30)
GRID = {"lr": [0.001, 0.01], "weight_decay": [0.0], "momentum": [0.0, 0.9]}
HEARTBEAT = (1, 3)  # seconds: a dead machine's trial is failed 3 s after its last beat
COORDINATOR = textwrap.dedent("""
    import sys
    from handgrad.run.config import TrainConfig
    from handgrad.run.sweep import SweepSpec, run_sweep
    spec = SweepSpec(TrainConfig(dataset="digits", hidden=(64,), epochs=30),
                     grid={"lr": [0.001, 0.01], "weight_decay": [0.0], "momentum": [0.0, 0.9]})
    run_sweep(sys.argv[1], spec, storage=sys.argv[2], heartbeat=(1, 3))
""")


def _machine(out: Path, url: str) -> subprocess.Popen:
    """A coordinator standing for a machine of its own, with its own --out."""
    return subprocess.Popen([sys.executable, "-c", COORDINATOR, str(out), url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _comparable(summary: dict) -> list:
    return [{k: v for k, v in r.items() if k != "run_dir"} for r in summary["configs"]]


def _study(spec: SweepSpec, url: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name(spec), storage=open_storage(Path("."), url))


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.02)


def test_two_machines_one_killed_mid_trial_finish_the_grid_once(postgres_url, tmp_path):
    spec = SweepSpec(BASE, grid=GRID)
    single = run_sweep(tmp_path / "single", spec)  # one machine, its own journal
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    b = _machine(b_dir, postgres_url)
    _wait_for(lambda: list(b_dir.glob("configs/*/metrics.csv")))
    a = _machine(a_dir, postgres_url)
    _wait_for(lambda: len(list(b_dir.glob("configs/*/metrics.csv"))) >= 2)
    b.send_signal(signal.SIGKILL)  # machine b dies in the middle of its second trial
    b.wait()
    a.wait(timeout=300)  # a runs what it can; it may find b's trial still running
    assert a.returncode in (0, 1), a.stderr.read().decode()
    study = _study(spec, postgres_url)
    of_b = [t for t in study.trials if t.user_attrs.get("out") == str(b_dir.resolve())]
    killed = [t for t in of_b if t.state.name in ("RUNNING", "FAIL")]
    assert len(killed) == 1 and any(t.state.name == "COMPLETE" for t in of_b)
    time.sleep(HEARTBEAT[1] + 1)  # past the grace period of b's last heartbeat

    b_dir.rename(tmp_path / "elsewhere")  # b's disk is not readable from a
    final = run_sweep(a_dir, spec, storage=postgres_url, heartbeat=HEARTBEAT)
    assert _comparable(final) == _comparable(single)  # b's results from the study
    trials = _study(spec, postgres_url).trials
    complete = Counter(config_key(t.params) for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 4 and set(complete.values()) == {1}
    started = Counter(config_key(t.params) for t in trials if "started" in t.user_attrs)
    assert {k for k, n in started.items() if n == 2} == {config_key(killed[0].params)}
    assert set(started.values()) == {1, 2}

    (tmp_path / "elsewhere").rename(b_dir)  # a shared file system: every run readable
    shared = run_sweep(a_dir, spec, storage=postgres_url, heartbeat=HEARTBEAT)
    assert _comparable(shared) == _comparable(single)
    assert shared["selected"]["test_loss"] == single["selected"]["test_loss"]
    assert shared["selected"]["confusion_matrix"] == single["selected"]["confusion_matrix"]
    for path in [*a_dir.rglob("*"), *b_dir.rglob("*")]:  # no file holds the password
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
