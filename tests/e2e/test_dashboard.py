"""A sweep folder opened in optuna-dashboard, as the README shows: the real server started
on 127.0.0.1 lists the study's trials with their configs, values and metrics."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from handgrad.run.config import TrainConfig
from handgrad.run.sweep import JOURNAL, SweepSpec, run_sweep


def _dashboard() -> str:
    found = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    found = found or shutil.which("optuna-dashboard")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("optuna-dashboard is not installed (CI is set: pip install -e '.[dev]')")
        pytest.skip("optuna-dashboard is not installed (pip install 'handgrad[dashboard]')")
    return found


def _as_shown(value) -> str:
    """A user attribute as the dashboard shows it: numbers as str, others as JSON."""
    return json.dumps(value) if value is None else str(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited: {server.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"optuna-dashboard did not answer on {url} in {seconds} s")
            time.sleep(0.2)


def test_a_sweep_folder_opens_in_optuna_dashboard(tmp_path):
    spec = SweepSpec(TrainConfig(dataset="digits", hidden=(16,), epochs=3, loss="sse"),
                     grid={"lr": [0.01, 50.0]})  # 50 diverges: value +inf, never selected
    summary = run_sweep(tmp_path, spec)
    port = _free_port()
    server = subprocess.Popen([_dashboard(), str(tmp_path / JOURNAL), "--host", "127.0.0.1",
                               "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        (study,) = _wait_for(api, server)["study_summaries"]
        assert study["study_name"].startswith("handgrad-sweep-")
        detail = _get(f"{api}/{study['study_id']}")
    finally:
        server.kill()
        server.wait(timeout=30)
    complete = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert len(complete) == 2
    shown = {}
    for trial in complete:
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        shown[float(params["lr"])] = (trial["values"][0], attrs["status"], attrs["val_loss"],
                                      attrs["val_accuracy"], attrs["run_dir"])
    for row in summary["configs"]:
        value, status, val_loss, val_accuracy, run_dir = shown[row["lr"]]
        assert status == row["status"] and Path(tmp_path / run_dir) == Path(row["run_dir"])
        assert val_accuracy == _as_shown(row["val_accuracy"])
        assert val_loss == _as_shown(row["val_loss"])
        assert value == (row["val_loss"] if row["status"] == "completed" else "inf")
    assert {s for _, s, *_ in shown.values()} == {"completed", "diverged"}
