"""Peak RSS while training on a full-size CIFAR-10 training set, beside the uint8 data size.

A synthetic dataset in the official format (5 × 10,000 training images, 10,000 test images,
random pixels, pickled as Python 2 wrote the official files) is written to a temporary
folder; `handgrad train` on all ten classes runs in a child process that reports its own peak
RSS (VmHWM) when it exits. `handgrad --help` (python, torch and handgrad loaded, no data) is
measured the same way, for context.

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import py2pickle  # noqa: E402
from common import save  # noqa: E402

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_synthetic(root: Path) -> int:
    """Official-format CIFAR-10 with random pixels; returns the training set's uint8 bytes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, 10_000).tolist(),
                 b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(10_000)]}
        (folder / name).write_bytes(py2pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(py2pickle.dumps(
        {b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": 10_000,
         b"num_vis": 3072}))
    return 50_000 * 3072


PROBE = """
import re, sys
from handgrad.cli.main import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
sys.exit(code)
"""


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS (VmHWM) of a child running `handgrad ARGS` (its `main`), read by the child
    itself at the end (ru_maxrss of a forked child would count the parent's pages before
    exec)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kb = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
    return int(kb[-1]) / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_bytes = write_synthetic(Path(tmp) / "data")
        import_only = peak_rss_mb(["--help"])
        train = peak_rss_mb([
            "train", "--data-dir", str(Path(tmp) / "data"),
            "--classes", *map(str, range(10)),
            "--epochs", "1", "--quiet", "--out", str(Path(tmp) / "run")])
    data_mb = data_bytes / 1e6
    budget = data_mb + 400
    print(f"uint8 training set: {data_mb:.1f} MB; `handgrad --help` (python+torch+handgrad): "
          f"{import_only:.0f} MB peak RSS")
    print(f"peak RSS training 3072-512-128-32-10 on 50,000 images: {train:.0f} MB "
          f"(target <= data + 400 MB = {budget:.0f} MB): "
          f"{'met' if train <= budget else 'NOT met'}")
    print(f"peak RSS - data size = {train - data_mb:.0f} MB")
    save("memory", {"data_mb": data_mb, "import_only_rss_mb": import_only,
                    "train_peak_rss_mb": train, "target_mb": budget,
                    "met": train <= budget})


if __name__ == "__main__":
    main()
