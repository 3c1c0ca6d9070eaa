"""Run every benchmark and regenerate benchmarks/RESULTS.md from their JSON output.

    make bench        (= .venv/bin/python benchmarks/run_all.py)
    .venv/bin/python benchmarks/run_all.py --render   # only rewrite RESULTS.md from out/*.json

Only ratios measured within one run are meaningful: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
GPU = HERE / "gpu"  # CUDA results copied from a GPU machine, kept in git
SCRIPTS = [
    ["bench_step.py"],
    ["bench_step.py", "--device", "cuda"],
    ["bench_pipeline.py", "--workers", "1"],
    ["bench_pipeline.py", "--workers", "2", "--repeats", "5"],
    ["bench_sweep.py", "--epochs", "5"],
    ["bench_memory.py"],
    ["bench_aged.py", "--threads", "1"],
    ["bench_aged.py", "--device", "cuda"],
    ["bench_subnormals.py"],
    ["bench_health.py"],
    ["bench_conv.py", "--threads", "1"],
    ["bench_conv.py", "--threads", "2"],
]


def load(name: str) -> dict:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def step_table(step: dict) -> list[str]:
    lines = ["| batch | manual (s/epoch) | autograd (s/epoch) | autograd / manual (pairs) | "
             "autograd / manual | target | matmul GFLOP/s | floor (s) | manual / floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in step.get("rows", []):
        pairs = r.get("pair_speedups", [])
        spread = f"{min(pairs):.2f} … {max(pairs):.2f}" if pairs else ""
        lines.append(f"| {r['batch']} | {r['manual_s']:.4f} | {r['autograd_s']:.4f} | "
                     f"{spread} | **{r['speedup']:.3f}** | >= {r['target_speedup']} | "
                     f"{r['matmul_gflops']:.0f} | {r['floor_s']:.4f} | "
                     f"{r['manual_over_floor']:.2f} |")
    return lines


def load_gpu(name: str) -> dict:
    """A CUDA result: this machine's, else the one recorded from a GPU machine in gpu/."""
    fresh = load(name)
    if fresh.get("rows"):
        return fresh
    recorded = GPU / f"{name}.json"
    return json.loads(recorded.read_text()) if recorded.exists() else fresh


def gpu_section(cuda: dict) -> list[str]:
    """The CUDA step benchmark, and the manual engine's weight layouts compared on it."""
    if not cuda.get("rows"):
        return [f"`bench_step.py --device cuda`: {cuda.get('skipped', 'not run')}."]
    m = cuda["machine"]
    lines = [f"`bench_step.py --device cuda`, measured on {m.get('cuda')} ({m.get('date')}, "
             f"torch {m.get('torch')}, {m.get('cpu')}), {cuda['repeats']} pairs:", ""]
    lines += step_table(cuda)
    for layout in ("linear", "transposed"):
        forced = load_gpu(f"step_cuda_{layout}")
        if forced.get("rows"):
            ratios = ", ".join(f"batch {r['batch']}: manual {r['manual_s'] * 1e3:.1f} ms, "
                               f"autograd/manual {r['speedup']:.3f}" for r in forced["rows"])
            lines += ["", f"Weights forced to the {layout} layout "
                      f"({forced['machine'].get('date')}): {ratios}."]
    return lines


def aged_section(aged: dict) -> list[str]:
    """bench_aged.py: per batch and marked epoch, manual's epoch time, its floor, and every
    contender's time over manual's (median of the chunk pairs, and their range)."""
    if not aged.get("rows"):
        return []
    m = aged["machine"]
    lines = ["", "## 6. Aged weights, and real peers over a whole run", "",
             f"`benchmarks/bench_aged.py` ({m.get('date')}, {aged['device']}, "
             f"{aged.get('threads')} torch thread(s)): "
             f"{aged['epochs']} epochs of one run, every contender in lockstep from the same "
             f"weights on the same batches; {aged['chunks']} timed chunk pairs an epoch at the "
             "marked epochs. A ratio is contender time / manual time (above 1: manual is "
             "faster), the median of the pairs (range in brackets). `fresh` is manual restarted "
             "from the initial weights at that epoch; `keep` is manual without flush-to-zero.",
             ""]
    for row in aged["rows"]:
        compile_s = row.get("compile_s")
        lines += [f"Batch {row['batch']}, {row['train_images']} images an epoch "
                  f"({row['steps_per_epoch']} steps)"
                  + (f"; torch.compile took {compile_s:.1f} s" if compile_s else "") + ":", "",
                  "| epoch | manual (s) | floor (s) | manual / floor | "
                  + " | ".join(next(iter(row["marks"].values()))["ratios"]) + " |",
                  "|---|---|---|---|" + "---|" * len(next(iter(row["marks"].values()))["ratios"])]
        for epoch, mark in row["marks"].items():
            cells = [f"{r['median']:.2f} ({r['min']:.2f}…{r['max']:.2f})"
                     for r in mark["ratios"].values()]
            lines.append(f"| {epoch} | {mark['epoch_s']['manual']:.2f} | {mark['floor_s']:.2f} "
                         f"| {mark['manual_over_floor']:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def subnormal_section(sub: dict) -> list[str]:
    """bench_subnormals.py: subnormal momentum entries by epoch, and the optimizer step."""
    if not sub.get("counts"):
        return []
    marks = ", ".join(f"epoch {c['epoch']}: {c['momentum']:,}" for c in sub["counts"]
                      if c["epoch"] in (1, 5, 10, 15, 20))
    steps = "; ".join(f"{t} thread(s): " + ", ".join(
        f"{mode} {v['median_ms']:.1f} ms ({v['min_ms']:.1f}…{v['max_ms']:.1f})"
        for mode, v in modes.items()) for t, modes in sub["optimizer_step"].items())
    return ["", "### Subnormals in an aged run", "",
            f"`benchmarks/bench_subnormals.py` ({sub['machine'].get('date')}): subnormal "
            f"entries of the momentum buffer ({sub['params']:,} entries; the weights and "
            f"gradients had none at every epoch): {marks}. One optimizer step on the epoch-20 "
            f"state, medians of pairs on copies of it: {steps}.", ""]


def health_section(health: dict) -> list[str]:
    if not health.get("rows"):
        return []
    lines = ["", "## 7. Gradient health per layer: its cost", "",
             f"`benchmarks/bench_health.py` ({health['machine']['date']}, "
             f"{health['repeats']} pairs): one epoch of the exercise's network on the CIFAR-10 "
             "pair, batch 64, with and without the per-layer records (run/health.py). "
             "*paired* is the median ratio of epochs with/without, *inside* the recorder's own "
             "calls timed within the recording epochs (target: under 3 %).", "",
             "| engine | epoch (s) | with / without (paired) | recorder's share (inside) |",
             "|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['epoch_s']:.2f} | {r['paired_ratio']:.3f} | "
              f"**{100 * r['inside_share']:.2f} %** |" for r in health["rows"]]
    return lines


def conv_section(runs: list[dict]) -> list[str]:
    """bench_conv.py at each thread count: the hand-written conv net's step against autograd
    and eager torch.nn."""
    runs = [r for r in runs if r.get("step_ms")]
    if not runs:
        return []
    first = runs[0]
    lines = ["", "## 9. The conv net: hand-written layers against autograd and torch.nn", "",
             f"`benchmarks/bench_conv.py --threads N` ({first['machine'].get('date')}, "
             f"{first['device']}): `handgrad train --model cnn`'s network on CIFAR-10's "
             f"shapes, float32, SGD momentum 0.9, batch {first['batch']}; after "
             f"{first.get('warmup', 0)} warm-up steps, {first['repeats']} repeats of "
             f"{first['steps']} steps of each contender. A ratio is contender / manual (above "
             "1: manual is faster), the median of the repeats (range in brackets).", "",
             "| threads | load average | contender | ms / step | / manual |",
             "|---|---|---|---|---|"]
    for run in runs:
        load = run.get("load_average", [float("nan")] * 2)
        for name, ms in run["step_ms"].items():
            r = run["ratio_over_manual"].get(name)
            cell = f"**{r['median']:.2f}** ({r['min']:.2f}…{r['max']:.2f})" if r else "1"
            lines.append(f"| {run['threads']} | {load[0]:.1f} → {load[1]:.1f} | {name} | "
                         f"{ms:.1f} | {cell} |")
    return lines


def render() -> str:
    step, cuda = load("step_cpu"), load_gpu("step_cuda")
    p1, p2 = load("pipeline_workers1"), load("pipeline_workers2")
    sweep, mem = load("sweep_scaling"), load("memory")
    m = step.get("machine", {})
    lines = [
        "# Benchmark results",
        "",
        "Regenerated by `make bench` (`.venv/bin/python benchmarks/run_all.py`); each script "
        "can be run alone (see its docstring). Ratios are measured within one run.",
        "",
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads), Python {m.get('python')}",
        f"- Date: {m.get('date')}",
        "",
        "## 1-2. Training step: manual vs autograd, and against the matmul floor",
        "",
        f"`benchmarks/bench_step.py`: the exercise's network, float32, SGD momentum 0.9, "
        f"{step.get('train_images')} CIFAR-10 images an epoch; {step.get('repeats')} pairs "
        "of epochs (one of each engine, who goes first alternating): medians, and the median "
        "of the pairs' ratios.",
        "",
    ]
    lines += step_table(step)
    lines += ["", "### On a GPU", ""] + gpu_section(cuda) + [""]
    lines += ["## 3. The whole exercise against the usual exercise code", "",
              "`benchmarks/bench_pipeline.py`: `handgrad reproduce` (5 epochs, batch 64, the "
              "four configs, real CIFAR-10 subset) against `benchmarks/baseline_exercise.py`.",
              "", "| handgrad workers | handgrad (s) | baseline (s) | speedup per pair | "
              "median speedup | target |", "|---|---|---|---|---|---|"]
    for p in (p1, p2):
        if p:
            pairs = ", ".join(f"{r:.2f}" for r in p["ratios"])
            lines.append(f"| {p['workers']} | {min(p['handgrad_s']):.1f} … "
                         f"{max(p['handgrad_s']):.1f} | {min(p['baseline_s']):.1f} … "
                         f"{max(p['baseline_s']):.1f} | {pairs} | **{p['speedup']:.2f}x** | "
                         ">= 2x |")
    if sweep:
        lines += ["", "## 4. Sweep scaling", "",
                  f"`benchmarks/bench_sweep.py`: the four-config sweep, {sweep['epochs']} epochs,"
                  f" on {sweep['cores']} cores: `--workers 1` {min(sweep['workers1_s']):.1f} … "
                  f"{max(sweep['workers1_s']):.1f}s, `--workers 2` "
                  f"{min(sweep['workers2_s']):.1f} … {max(sweep['workers2_s']):.1f}s: "
                  f"**{sweep['speedup']:.2f}x** (target >= 1.3x)."]
    if mem:
        lines += ["", "## 5. Memory", "",
                  f"`benchmarks/bench_memory.py`: training on a synthetic full-size CIFAR-10 "
                  f"(50,000 images, {mem['data_mb']:.1f} MB as uint8): peak RSS "
                  f"**{mem['train_peak_rss_mb']:.0f} MB** against a target of data + 400 MB = "
                  f"{mem['target_mb']:.0f} MB ({'met' if mem['met'] else 'not met'}); "
                  f"`handgrad --help` alone peaks at {mem['import_only_rss_mb']:.0f} MB."]
    lines += aged_section(load("aged_cpu")) + subnormal_section(load("subnormals"))
    lines += health_section(load("health"))
    lines += conv_section([load("conv_cpu_threads1"), load("conv_cpu_threads2")])
    return "\n".join(lines) + "\n"


def main() -> None:
    if "--render" not in sys.argv[1:]:  # --render: rewrite RESULTS.md from benchmarks/out
        for args in SCRIPTS:
            print(f"== {' '.join(args)}", flush=True)
            subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=True)
    notes = HERE / "NOTES.md"
    text = render() + ("\n" + notes.read_text() if notes.exists() else "")
    (HERE / "RESULTS.md").write_text(text)
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
