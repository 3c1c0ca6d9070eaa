#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# It installs Python, torch (CPU) and handgrad from the wheel shipped in the same zip.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
/autograder/venv/bin/pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install --quiet /autograder/source/handgrad-*.whl
# Start-up check: the grader imports and grades its own example solution.
/autograder/venv/bin/handgrad check-backprop /autograder/source/backprop_correct.py > /dev/null
