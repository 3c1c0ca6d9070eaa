"""Train both engines from one start and measure how far their curves drift apart (the data;
`handgrad.report.figures.comparison_figure` draws it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from handgrad.data import Dataset
from handgrad.run import summaries
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.rundir import check_folder_holds, check_out, lock_folder, write_json
from handgrad.run.train import Observer, RunResult, preflight, train


@dataclass
class Comparison:
    manual: RunResult
    autograd: RunResult

    def gaps(self) -> list[dict[str, float]]:
        """Per epoch: |manual - autograd| of train and validation loss, and the larger one."""
        out = []
        for m, a in zip(self.manual.history, self.autograd.history, strict=False):
            train_gap, val_gap = abs(m.train_loss - a.train_loss), abs(m.val_loss - a.val_loss)
            out.append({"epoch": m.epoch, "manual_train_loss": m.train_loss,
                        "autograd_train_loss": a.train_loss, "manual_val_loss": m.val_loss,
                        "autograd_val_loss": a.val_loss, "train_gap": train_gap,
                        "val_gap": val_gap, "max_gap": max(train_gap, val_gap)})
        return out

    def max_gap(self) -> float:
        return max((g["max_gap"] for g in self.gaps()), default=float("nan"))

    @torch.no_grad()
    def max_weight_gap(self) -> float:
        """The largest |manual - autograd| over every weight and bias at the end (both runs
        trained in this process: a run loaded from disk has no weights in memory)."""
        if self.manual.model is None or self.autograd.model is None:
            raise ValueError("max_weight_gap needs both runs' weights in memory")
        pairs = zip(self.manual.model.parameters(), self.autograd.model.parameters(),
                    strict=True)
        return max(float((m - a).abs().max()) for m, a in pairs)

    def __repr__(self) -> str:
        return summaries.comparison_line(self)

    def _repr_html_(self) -> str:
        return summaries.comparison_html(self)


def compare_engines(config: TrainConfig, dataset: Dataset | None = None,
                    out_dir: str | Path | None = None, observer: Observer | None = None,
                    command: list[str] | None = None,
                    done: list[RunResult] | None = None,
                    evaluate_test: bool = False) -> Comparison:
    """Run `config` with each engine (same seed: same weights, same batches).

    done: runs already made (e.g. by a sweep); one whose config is exactly this config for an
    engine is used instead of training that engine again. Training is deterministic, so the
    result is the same. The test set is left alone unless `evaluate_test`.
    out_dir: each engine's run directory and compare.json (the gaps) are written there."""
    config.validate()
    if dataset is None:
        dataset = load_data(config)
    out = check_out(out_dir)
    if out is not None:  # everything checked before anything is written
        check_folder_holds(out, {"manual", "autograd", "compare.json", "engines.png"})
    for engine in ("manual", "autograd"):
        preflight(config.replace(engine=engine), dataset, out / engine if out else None)
    if out is None:
        return _compare(config, dataset, None, observer, command, done, evaluate_test)
    with lock_folder(out):
        (out / "compare.json").unlink(missing_ok=True)  # no stale verdict while training
        return _compare(config, dataset, out, observer, command, done, evaluate_test)


def _compare(config: TrainConfig, dataset: Dataset, out: Path | None, observer: Observer | None,
             command: list[str] | None, done: list[RunResult] | None, evaluate_test: bool
             ) -> Comparison:
    """`compare_engines` once its checks have passed (and `out`'s lock is held)."""
    runs = {}
    for engine in ("manual", "autograd"):
        wanted = config.replace(engine=engine).to_dict()
        previous = [r for r in done or [] if r.config.to_dict() == wanted]
        if previous:
            runs[engine] = previous[0]
            continue
        runs[engine] = train(config.replace(engine=engine), dataset,
                             out / engine if out else None, observer, evaluate_test,
                             command=command)
    comparison = Comparison(runs["manual"], runs["autograd"])
    if out is not None:
        write_json(out / "compare.json", {"dtype": config.dtype, "max_gap": comparison.max_gap(),
                                          "epochs": comparison.gaps()})
    return comparison
