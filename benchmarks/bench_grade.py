"""Grading: one student's check against starting Python with torch, and a class a submission.

    .venv/bin/python benchmarks/bench_grade.py [--pairs 5] [--submissions 40] [--jobs 2]

Measured, in one run on this machine:
- single: `handgrad check-backprop FILE` of a correct file (a fresh process: start-up, the
  salted cases, one confined child, the judging) against `python -c "import torch,
  handgrad"`, in `--pairs` pairs (who goes first alternating); the median of the pairs'
  ratios, against the target <= 1.3;
- batch: `handgrad grade FOLDER --jobs J` of `--submissions` correct files (the probe,
  every child, grades.csv/json), wall time a submission; then a rerun where nothing changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, handgrad_cmd, median, save

CORRECT = ROOT / "tests" / "submissions" / "correct_plain.py"
IMPORT = [sys.executable, "-c", "import torch, handgrad"]


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def single(pairs: int) -> dict:
    """(check, import) wall times in alternating order, and the pairs' ratios."""
    check_cmd = handgrad_cmd("check-backprop", str(CORRECT))
    wall(IMPORT)  # warm the page cache once
    checks, imports = [], []
    for i in range(pairs):
        if i % 2:
            imports.append(wall(IMPORT))
            checks.append(wall(check_cmd))
        else:
            checks.append(wall(check_cmd))
            imports.append(wall(IMPORT))
    ratios = [c / m for c, m in zip(checks, imports, strict=True)]
    return {"check_s": checks, "import_s": imports, "ratios": ratios,
            "ratio": median(ratios), "target": 1.3}


def batch(n: int, jobs: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        folder = root / "class"
        folder.mkdir()
        for i in range(n):  # distinct files (distinct hashes), each correct
            (folder / f"student_{i:03d}.py").write_text(CORRECT.read_text() + f"\nID = {i}\n")
        out = root / "grades"
        cmd = handgrad_cmd("grade", str(folder), "--jobs", str(jobs), "--out", str(out),
                           "--quiet")
        total = wall(cmd)
        passed = json.loads((out / "grades.json").read_text())["summary"]["passed"]
        if passed != n:
            raise SystemExit(f"only {passed} of {n} correct submissions passed")
        rerun = wall(cmd)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"submissions": n, "jobs": jobs, "total_s": total, "per_submission_s": total / n,
            "rerun_unchanged_s": rerun}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--submissions", type=int, default=40)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    one = single(args.pairs)
    many = batch(args.submissions, args.jobs)
    print(f"single check-backprop: {median(one['check_s']):.2f} s, import torch, handgrad: "
          f"{median(one['import_s']):.2f} s; ratio per pair "
          f"{', '.join(f'{r:.2f}' for r in one['ratios'])}: median **{one['ratio']:.2f}** "
          f"(target <= 1.3)")
    print(f"batch: {many['submissions']} correct submissions, --jobs {many['jobs']}: "
          f"{many['total_s']:.1f} s = {many['per_submission_s']:.3f} s a submission; rerun "
          f"with nothing changed {many['rerun_unchanged_s']:.1f} s")
    print(f"saved {save('grade', {'single': one, 'batch': many})}")


if __name__ == "__main__":
    main()
