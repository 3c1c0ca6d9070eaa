"""The screenshots of docs/: report.html of the exercise on digits, and the class dashboard
of the test submissions, each taken in headless Chromium (the browser the tests use).

    .venv/bin/handgrad reproduce --dataset digits --out /tmp/x
    .venv/bin/handgrad grade tests/submissions --out /tmp/y
    .venv/bin/python docs/make_screenshots.py /tmp/x /tmp/y
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import chromium, full_page_png  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("reproduce_dir", type=Path)
    p.add_argument("grade_dir", type=Path)
    p.add_argument("--height", type=int, default=3900, help="the most pixels of each page")
    args = p.parse_args()
    driver = chromium()
    try:
        for folder, name in ((args.reproduce_dir, "report.png"),
                             (args.grade_dir, "dashboard.png")):
            driver.get((folder / "report.html").resolve().as_uri())
            print(full_page_png(driver, ROOT / "docs" / name, most=args.height))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
