"""The run directory: the one owner of its format, for writing and for reading back.

    DIR/config.json          everything needed to rerun (command, settings, sizes, versions)
    DIR/metrics.csv          one row per epoch (METRIC_FIELDS)
    DIR/layers.csv           one row per epoch and layer: gradient health (health.py)
    DIR/results.json         status, final metrics and the sha256 of the weights; written last
    DIR/weights.safetensors  the final weights (no pickle), byte-identical for identical runs

Every file is written atomically (files.py). A run starting in a folder first checks that
the folder is empty or holds a run of the same settings, then removes the old results,
weights and temporaries: a run killed mid-way never leaves old results looking current.
Reading checks every file and refuses what does not fit, with a message naming the file.
results.json records the sha256 of config.json's settings: one edited after the run is refused.
The writer holds a lock on the folder (`lock_folder`): a second writer is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from handgrad.data import IMAGE_SHAPES
from handgrad.engine.errors import SettingError
from handgrad.engine.model import MLP
from handgrad.engine.networks import build_network
from handgrad.engine.sequential import Sequential
from handgrad.run import rundir_checks
from handgrad.run.config import TrainConfig
from handgrad.run.files import (  # noqa: F401  (re-exported: the primitives of the format)
    atomic_write_bytes,
    check_out,
    command_line,
    lock_folder,
    read_json,
    versions,
    write_csv,
    write_json,
)
from handgrad.run.health import LAYER_FIELDS, LayerHealth, layer_row, read_layers
from handgrad.run.memory_estimate import parameter_count
from handgrad.run.metrics import Evaluation
from handgrad.run.run_result import EpochMetrics, RunResult, history_curves
from handgrad.run.weights import (  # noqa: F401  (save_weights, load_weights re-exported)
    check_sha,
    load_weights,
    read_weights,
    save_weights,
    weights_bytes,
    weights_metadata,
)

CONFIG, METRICS, RESULTS = "config.json", "metrics.csv", "results.json"
LAYERS = "layers.csv"
WEIGHTS = "weights.safetensors"
CURVES = "curves.png"  # drawn by `handgrad train` from metrics.csv (handgrad.report.figures)
REPORT = "report.html"  # written by `handgrad train` (handgrad.report.html)
METRIC_FIELDS = rundir_checks.METRIC_FIELDS


class RunDir:
    """One run's folder. Write: `start` (config.json), `write_metrics` after each epoch,
    `finish` (weights, then results.json). Read: `load_result`, `load_model`, `read_curves`
    (`handgrad.load_run` joins the first two)."""

    CONFIG, METRICS, RESULTS, WEIGHTS, LAYERS = CONFIG, METRICS, RESULTS, WEIGHTS, LAYERS
    FILES = (CONFIG, METRICS, RESULTS, WEIGHTS, LAYERS)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # ---- writing -----------------------------------------------------------------------

    def check_reusable(self, config: TrainConfig, class_names: Sequence[str]) -> None:
        """ValueError unless the folder is absent, empty, or a run of the same settings and
        classes (killed or finished: running it again gives the same result)."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise SettingError(f"{self.path}: exists and is not a directory; use another out",
                               "out")
        names = {p.name for p in self.path.iterdir()}
        foreign = sorted(n for n in names
                         if n not in (*self.FILES, CURVES, REPORT) and not _temporary(n))
        if foreign:
            raise SettingError(f"{self.path}: not empty and not a handgrad run directory (it "
                               f"holds {', '.join(foreign[:3])}); use another out", "out")
        present = names & set(self.FILES)
        if present and CONFIG not in present:
            raise SettingError(f"{self.path}: holds {', '.join(sorted(present))} but no "
                               f"{CONFIG}: not a run handgrad can reuse; use another out", "out")
        if not present:
            return
        try:
            stored = rundir_checks.check_config_json(read_json(self.file(CONFIG)),
                                                     self.file(CONFIG))
        except ValueError as e:
            raise SettingError(f"{e}; not a run handgrad can reuse: use another out",
                               "out") from None
        diff = rundir_checks.changed_settings(stored["config"], config.to_dict())
        if stored["class_names"] != list(class_names):
            diff.insert(0, f"classes: {stored['class_names']} there, {list(class_names)} now")
        if diff:
            raise SettingError(f"{self.path}: holds a run with other settings "
                               f"({'; '.join(diff)}); use another out, or the same settings to "
                               "run it again", "out")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (see `lock_folder`) while writing the run."""
        with lock_folder(self.path):
            yield

    def start(self, config: TrainConfig, class_names: Sequence[str], sizes: Sequence[int],
              command: list[str] | None = None) -> None:
        """Check the folder (`check_reusable`), clear an earlier run's results, weights,
        metrics and temporaries (results first), then write config.json."""
        self.check_reusable(config, class_names)
        self.path.mkdir(parents=True, exist_ok=True)
        for name in (RESULTS, WEIGHTS, METRICS, LAYERS, CURVES, REPORT):
            self.file(name).unlink(missing_ok=True)
        for p in self.path.iterdir():
            if _temporary(p.name):
                p.unlink(missing_ok=True)
        write_json(self.file(CONFIG), {
            "command": command if command is not None else command_line(),
            "config": config.to_dict(),
            "sizes": list(sizes),
            "class_names": list(class_names),
            "device": str(config.resolved_device()),
            "versions": versions(),
        })

    def write_metrics(self, history: Sequence[EpochMetrics],
                      layers: Sequence[LayerHealth] = ()) -> None:
        """metrics.csv, and layers.csv when there are layer records."""
        write_csv(self.file(METRICS), [rundir_checks.metrics_row(m) for m in history],
                  METRIC_FIELDS)
        if layers:
            write_csv(self.file(LAYERS), [layer_row(h) for h in layers], LAYER_FIELDS)

    def finish(self, result: RunResult) -> None:
        """metrics.csv, the weights when completed, and last results.json with their sha256."""
        self.write_metrics(result.history, result.layers)
        sha = None
        if result.status == "completed" and result.model is not None:
            sha = save_weights(self.file(WEIGHTS), result.model.state_dict(), weights_metadata(
                result.config, result.model, result.class_names))
        config_sha = rundir_checks.config_sha256(read_json(self.file(CONFIG)))
        write_json(self.file(RESULTS), {**result.summary(), "weights_sha256": sha,
                                        "config_sha256": config_sha})

    # ---- reading -----------------------------------------------------------------------

    def read_record(self) -> dict[str, Any]:
        """config.json, checked: its settings valid, sizes and class names consistent."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such run directory")
        if not self.file(CONFIG).exists() and (self.path / "sweep.json").exists():
            raise ValueError(f"{self.path}: is a sweep folder, not a run; give one of its runs "
                             f"({self.path / 'configs'}/<name>/, the selected one is named "
                             "in its results.md)")
        return rundir_checks.check_config_json(read_json(self.file(CONFIG)), self.file(CONFIG))

    def read_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.read_record()["config"])

    def read_results(self) -> dict[str, Any]:
        """results.json, checked; FileNotFoundError when the run never finished."""
        path = self.file(RESULTS)
        if not path.exists():
            if not self.path.is_dir():
                raise FileNotFoundError(f"{self.path}: no such run directory")
            raise FileNotFoundError(f"{self.path}: no {RESULTS}: the run did not finish "
                                    "(run the same command again)")
        return rundir_checks.check_results_json(read_json(path), path)

    def read_history(self) -> list[EpochMetrics]:
        return rundir_checks.read_metrics(self.file(METRICS))

    def read_layers(self) -> list[LayerHealth]:
        """layers.csv's rows (none for a run written before it was recorded)."""
        path = self.file(LAYERS)
        return read_layers(path) if path.exists() else []

    def read_curves(self) -> dict[str, list[float]]:
        """`history_curves` of metrics.csv: train and validation loss and accuracy per epoch
        (empty lists before the first)."""
        return history_curves(self.read_history() if self.file(METRICS).exists() else [])

    def load_result(self) -> RunResult:
        """The finished run (settings, history, status, test metrics), without its weights."""
        record, results = self.read_record(), self.read_results()
        rundir_checks.check_config_sha(record, results, self.file(RESULTS))
        history = self.read_history()
        if len(history) != results["epochs_completed"]:
            raise ValueError(f"{self.file(METRICS)}: {len(history)} epochs, but {RESULTS} "
                             f"says {results['epochs_completed']}")
        if results["class_names"] != record["class_names"]:
            raise ValueError(f"{self.path}: {RESULTS} and {CONFIG} name different classes")
        test = None
        if results["test_loss"] is not None and results["confusion_matrix"] is not None:
            test = Evaluation(results["test_loss"], results["test_accuracy"],
                              results["confusion_matrix"])
        return RunResult(TrainConfig.from_dict(record["config"]), tuple(record["class_names"]),
                         results["status"], results["message"], history, test,
                         layers=self.read_layers())

    def load_model(self) -> MLP | Sequential:
        """The completed run's network with its saved weights, after checking that they are
        the ones the run wrote: shapes, metadata and sha256 against config/results.json."""
        record, results = self.read_record(), self.read_results()
        if results["status"] != "completed":
            raise ValueError(f"{self.path}: run status is {results['status']!r}; it has no "
                             "weights to evaluate")
        config = TrainConfig.from_dict(record["config"])
        path = self.file(WEIGHTS)
        data, state, meta = read_weights(path, parameter_count(record["sizes"]) * 8 + (1 << 20))
        shell = _network(config, record["sizes"], "meta")  # no memory
        expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected != found:
            raise ValueError(f"{path}: architecture mismatch: {CONFIG} says sizes "
                             f"{record['sizes']} ({_fmt(expected)}), the file has {_fmt(found)}")
        wanted = weights_metadata(config, shell, record["class_names"])
        wrong = [f"{k} {meta.get(k)!r} (not {v!r})" for k, v in wanted.items()
                 if meta.get(k) != v]
        if wrong:
            raise ValueError(f"{path}: metadata does not match {CONFIG}: {', '.join(wrong)}")
        rundir_checks.check_config_sha(record, results, self.file(RESULTS))
        check_sha(path, data, results.get("weights_sha256"), RESULTS)
        model = _network(config, record["sizes"], "cpu")
        model.load_state_dict({k: v.to(config.torch_dtype) if v.is_floating_point() else v
                               for k, v in state.items()})
        return model

def load_result(path: str | Path) -> RunResult:
    return RunDir(path).load_result()


def load_model(path: str | Path) -> MLP:
    return RunDir(path).load_model()


def read_curves(path: str | Path) -> dict[str, list[float]]:
    return RunDir(path).read_curves()


def check_folder_holds(path: str | Path, names: set[str]) -> None:
    """ValueError unless `path` is absent, or a folder holding only `names` and temporaries
    of them (a folder of another command is never written into)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SettingError(f"{path}: exists and is not a directory; use another out", "out")
    if not path.exists():
        return
    foreign = sorted(p.name for p in path.iterdir() if p.name not in names and not any(
        p.name.startswith(f".{n}.") or p.name.startswith(f".{Path(n).stem}.") for n in names))
    if foreign:
        raise SettingError(f"{path}: not empty and not a folder of this command (it holds "
                           f"{', '.join(foreign[:3])}); use another out", "out")


def default_run_dir(name: str, base: str | Path = "runs") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(base) / f"{stamp}-{name}"


def _network(config: TrainConfig, sizes: list[int], device: str) -> MLP | Sequential:
    """An untrained network of the run's architecture, in its dtype, on `device`."""
    if config.model == "mlp":
        return MLP(sizes, activation=config.activation, dtype=config.torch_dtype,
                   device=device)
    with torch.device(device):
        return build_network(config.model, IMAGE_SHAPES[config.dataset], sizes[1:-1],
                             sizes[-1], config.activation, config.seed, config.torch_dtype)


def _temporary(name: str) -> bool:
    """A temporary of `atomic_write_bytes` for one of the run's files (left by a kill)."""
    return any(name.startswith(f".{f}.") for f in RunDir.FILES)


def _fmt(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in sorted(shapes.items()))
