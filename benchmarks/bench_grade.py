"""Grading a class: seconds per submission for a folder of correct submissions.

    .venv/bin/python benchmarks/bench_grade.py [--submissions 200] [--jobs 2] [--baseline 8]

Measured, in one run on this machine:
- `handgrad grade FOLDER --jobs J` as an instructor runs it (a fresh process: start-up, the
  fork server importing torch, every child, the judging, grades.csv/json), wall time over
  the number of submissions; the issue's target is <= 1.5 s a submission on 2 cores;
- the baseline: one `handgrad check-backprop FILE` process a submission (a fresh Python and
  torch import for each, as a grading script calling the command per file would do), on
  `--baseline` of the files, one at a time;
- their ratio, per submission.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import ROOT, handgrad_cmd, save

CORRECT = ROOT / "tests" / "submissions" / "correct_plain.py"


def make_folder(root: Path, n: int) -> list[Path]:
    """n student files, each a correct solution with a line of its own (distinct hashes)."""
    paths = []
    for i in range(n):
        path = root / f"student_{i:03d}.py"
        path.write_text(CORRECT.read_text() + f"\nSTUDENT = {i}\n")
        paths.append(path)
    return paths


def grade_folder(folder: Path, out: Path, jobs: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(handgrad_cmd("grade", str(folder), "--jobs", str(jobs), "--out",
                                       str(out), "--quiet"), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        failed = [e for e in json.loads((out / "grades.json").read_text())["submissions"]
                  if not e["passed"]] if (out / "grades.json").exists() else []
        details = "\n".join(f"{e['id']}: {e['kind']}: {e['error']}\n{e['result']['output']}"
                            for e in failed[:3])
        raise SystemExit(f"grade exited with {done.returncode}: not every correct submission "
                         f"passed\n{done.stderr[-2000:]}\n{details}")
    return seconds


def one_process_each(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        subprocess.run(handgrad_cmd("check-backprop", str(path)), check=True,
                       capture_output=True)
    return (time.perf_counter() - start) / len(paths)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--submissions", type=int, default=200)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--baseline", type=int, default=8)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        folder = root / "class"
        folder.mkdir()
        paths = make_folder(folder, args.submissions)
        total = grade_folder(folder, root / "grades", args.jobs)
        rerun = grade_folder(folder, root / "grades", args.jobs)
        baseline = one_process_each(paths[: args.baseline])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per = total / args.submissions
    result = {"submissions": args.submissions, "jobs": args.jobs, "total_s": total,
              "per_submission_s": per, "rerun_unchanged_s": rerun,
              "baseline_process_per_submission_s": baseline, "speedup": baseline / per,
              "target_per_submission_s": 1.5}
    print(f"handgrad grade: {args.submissions} correct submissions, --jobs {args.jobs}: "
          f"{total:.1f} s = {per:.3f} s a submission (target <= 1.5 s)")
    print(f"rerun, nothing changed: {rerun:.1f} s")
    print(f"baseline, one check-backprop process a submission: {baseline:.2f} s a submission "
          f"-> grade is {baseline / per:.1f}x faster")
    print(f"saved {save('grade', result)}")


if __name__ == "__main__":
    main()
