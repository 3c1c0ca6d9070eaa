"""The wheel: built from the source tree, installed in a fresh venv, its command run."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import handgrad

REPO = Path(__file__).resolve().parents[2]


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          **kw)


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_its_command_runs(tmp_path):
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info behind
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    build = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-v", "-w", tmp_path / "dist", source)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "deprecated" not in (build.stdout + build.stderr).lower()  # license as SPDX
    (wheel,) = (tmp_path / "dist").glob("handgrad-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "handgrad/report/plots.py" in names and not any("tests/" in n for n in names)
    assert {f"handgrad/report/templates/{t}.j2" for t in ("base.html", "dashboard.html",
                                                          "diagram.svg")} <= set(names)

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    # the dependencies (torch, …) come from this environment instead of the network
    Path(purelib.stdout.strip(), "deps.pth").write_text("\n".join(site.getsitepackages()))
    install = run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel)
    assert install.returncode == 0, install.stderr[-2000:]

    where = run(python, "-c", "import handgrad; print(handgrad.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where  # the wheel's copy, not the source tree
    drawn = run(python, "-c", "import handgrad; print(handgrad.diagram([4, 3, 2]).svg[:4])",
                cwd=tmp_path)  # the templates are found in the installed package
    assert drawn.stdout.strip() == "<svg", drawn.stderr[-2000:]
    helped = run(venv / "bin" / "handgrad", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "reproduce" in helped.stdout, helped.stderr
    version = run(venv / "bin" / "handgrad", "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"handgrad {handgrad.__version__}"
    assert f'version = "{handgrad.__version__}"' in (REPO / "pyproject.toml").read_text()
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
