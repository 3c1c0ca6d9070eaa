"""One training loop, two engines that start from identical weights and see identical batches.

- `engine="autograd"`: `loss.backward()` and a `torch.optim` optimizer;
- `engine="manual"`: `handgrad.backpropagation` and a `handgrad.engine.optim` optimizer; the
  backward pass writes the gradients straight into one flat buffer that the optimizer
  reads as the gradient of one flat parameter (no copy, no zeroing; see `flat.py`).

The step makes no host sync: per-step losses stay on the device and are checked for NaN/inf
every `CHECK_EVERY` steps and at the end of each epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgrad.data import Dataset
from handgrad.engine import optim as hand_optim
from handgrad.engine.denormals import flush_denormals
from handgrad.engine.flat import FlatParams
from handgrad.engine.losses import Loss, get_loss
from handgrad.engine.model import MLP
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.metrics import Evaluation, evaluate, one_hot, per_sample_sum
from handgrad.run.rundir import (
    CONFIG,
    METRIC_FIELDS,
    METRICS,
    RESULTS,
    WEIGHTS,
    command_line,
    save_weights,
    versions,
    write_csv,
    write_json,
)

Tensor = torch.Tensor
CHECK_EVERY = 25
OPTIMIZER_CLASSES = {
    "manual": {"sgd": hand_optim.SGD, "adam": hand_optim.Adam, "adamw": hand_optim.AdamW},
    "autograd": {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW},
}


@dataclass
class EpochMetrics:
    """Train metrics are running means over the epoch's batches; val is a full pass after it;
    seconds: the epoch's training time, without the evaluation."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class RunResult:
    config: TrainConfig
    class_names: tuple[str, ...]
    status: str = "completed"  # or "diverged"
    message: str = ""
    history: list[EpochMetrics] = field(default_factory=list)
    test: Evaluation | None = None
    model: MLP | None = None

    def summary(self) -> dict[str, Any]:
        """The content of results.json."""
        last = self.history[-1] if self.history else None
        test = self.test
        return {
            "status": self.status,
            "message": self.message,
            "epochs_completed": len(self.history),
            "train_loss": last.train_loss if last else None,
            "train_accuracy": last.train_accuracy if last else None,
            "val_loss": last.val_loss if last else None,
            "val_accuracy": last.val_accuracy if last else None,
            "test_loss": test.loss if test else None,
            "test_accuracy": test.accuracy if test else None,
            "confusion_matrix": test.confusion if test else None,
            "class_names": list(self.class_names),
        }


class Observer:
    """Hooks the CLI uses to render progress; the library itself never prints."""

    def epoch_start(self, epoch: int, steps: int) -> None: ...

    def batch_end(self, step: int, loss: Tensor) -> None: ...

    def epoch_end(self, metrics: EpochMetrics) -> None: ...


class Diverged(Exception):
    pass


def sizes_for(config: TrainConfig, D: int, num_classes: int) -> list[int]:
    return [D, *config.hidden, num_classes]


def build_model(config: TrainConfig, D: int, num_classes: int) -> MLP:
    """The network, initialised from `config.seed` on the CPU (identical on every device)."""
    torch.manual_seed(config.seed)
    model = MLP(sizes_for(config, D, num_classes), activation=config.activation,
                dtype=config.torch_dtype)
    return model.to(config.resolved_device())


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """torch.optim's class for the autograd engine, handgrad.engine.optim's for the manual one."""
    cls = OPTIMIZER_CLASSES[config.engine][config.optimizer]
    if config.optimizer == "sgd":
        return cls(params, lr=config.lr, momentum=config.momentum,
                   weight_decay=config.weight_decay, nesterov=config.nesterov)
    return cls(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)


def make_step(config: TrainConfig, model: MLP, loss: Loss, transposed: bool | None = None,
              ) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """step(x (B, D), t (B, C)) -> (y_pred (B, C), loss value): one update of the engine.

    The manual engine puts all parameters and gradients in two flat buffers (`FlatParams`)
    and gives its optimizer the single flat parameter: the same arithmetic, one pass per
    operation for the whole network. `transposed`: the weights' layout in that buffer
    (default: `FlatParams`' choice for the device and thread count). Both engines run with
    subnormals flushed to zero on every thread unless `config.keep_denormals`.
    """
    flush_denormals(not config.keep_denormals)  # on every thread: see engine/denormals.py
    if config.engine == "manual":
        flat = FlatParams(model, transposed)
        opt = build_optimizer(config, [flat.theta])

        @torch.no_grad()
        def manual_step(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
            y_pred = model(x)
            value, dL_dy = loss.value_and_grad(y_pred, t)
            flat.backward(dL_dy)   # = backpropagation(model, t, y_pred, loss), into θ.grad
            opt.step()
            return y_pred, value

        return manual_step

    opt = build_optimizer(config, model.parameters())

    def autograd_step(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        opt.zero_grad(set_to_none=True)
        y_pred = model(x)
        value = loss.torch_value(y_pred, t)
        value.backward()
        opt.step()
        return y_pred.detach(), value.detach()

    return autograd_step


def _check_finite(step_losses: Tensor, upto: int, epoch: int, config: TrainConfig) -> None:
    bad = ~torch.isfinite(step_losses[:upto])
    if bad.any():
        step = int(torch.nonzero(bad)[0]) + 1
        value = step_losses[step - 1].item()
        raise Diverged(
            f"loss became {value} at epoch {epoch}, step {step}; "
            f"try a lower learning rate than --lr {config.lr:g}"
        )


def train_epoch(epoch: int, step_fn, dataset: Dataset, config: TrainConfig, loss: Loss,
                gen: torch.Generator, observer: Observer) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) over its samples."""
    n = len(dataset.train)
    steps = -(-n // config.batch_size)
    device, dtype, k = dataset.train.x.device, config.torch_dtype, dataset.num_classes
    step_losses = torch.empty(steps, dtype=torch.float64, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    observer.epoch_start(epoch, steps)
    for i, (x, y) in enumerate(dataset.batches(dataset.train, config.batch_size, gen, dtype)):
        y_pred, value = step_fn(x, one_hot(y, k, dtype))
        step_losses[i] = value
        total += per_sample_sum(loss, value, len(y))
        correct += (y_pred.argmax(dim=1) == y).sum()
        observer.batch_end(i + 1, value)
        if (i + 1) % CHECK_EVERY == 0:
            _check_finite(step_losses, i + 1, epoch, config)
    _check_finite(step_losses, steps, epoch, config)
    return total.item() / n, correct.item() / n


def train(
    config: TrainConfig,
    dataset: Dataset | None = None,
    out_dir: str | Path | None = None,
    observer: Observer | None = None,
    evaluate_test: bool = True,
    command: list[str] | None = None,
) -> RunResult:
    """Train one model as `config` says; write its run directory to `out_dir` when given.

    config.json is written first, metrics.csv after every epoch, and the weights and
    results.json last, so the directory is consistent at every moment. A NaN/inf loss ends
    the run with status "diverged" (no weights saved).
    """
    config.validate()
    observer = observer or Observer()
    device = config.resolved_device()
    if dataset is None:
        dataset = load_data(config)
    dataset = dataset.to(device)
    model = build_model(config, dataset.D, dataset.num_classes)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        write_json(out / CONFIG, _config_record(config, dataset, model, command))
    loss = get_loss(config.loss)
    step_fn = make_step(config, model, loss)
    gen = torch.Generator().manual_seed(config.seed)
    result = RunResult(config, dataset.class_names, model=model)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        try:
            train_loss, train_acc = train_epoch(epoch, step_fn, dataset, config, loss, gen,
                                                observer)
            seconds = time.perf_counter() - start  # training only, without the evaluation
        except Diverged as e:
            result.status, result.message = "diverged", str(e)
            break
        val = evaluate(model, dataset, dataset.val, loss, config.torch_dtype)
        if not math.isfinite(val.loss):
            result.status = "diverged"
            result.message = (f"validation loss became {val.loss} after epoch {epoch}; try a "
                              f"lower learning rate than --lr {config.lr:g}")
            break
        metrics = EpochMetrics(epoch, train_loss, train_acc, val.loss, val.accuracy, seconds)
        result.history.append(metrics)
        observer.epoch_end(metrics)
        if out is not None:
            write_csv(out / METRICS, [asdict(m) for m in result.history], METRIC_FIELDS)
    if result.status == "completed" and evaluate_test:
        result.test = evaluate(model, dataset, dataset.test, loss, config.torch_dtype)
    if out is not None:
        finish_run_dir(out, result)
    return result


def finish_run_dir(out: Path, result: RunResult) -> None:
    """Write metrics.csv, the weights (when completed) and, last, results.json."""
    write_csv(out / METRICS, [asdict(m) for m in result.history], METRIC_FIELDS)
    if result.status == "completed" and result.model is not None:
        save_weights(out / WEIGHTS, result.model.state_dict(), weights_metadata(result.config,
                     result.model, result.class_names))
    write_json(out / RESULTS, result.summary())


def weights_metadata(config: TrainConfig, model: MLP, class_names) -> dict[str, str]:
    return {"sizes": ",".join(map(str, model.sizes)), "activation": model.activation,
            "dataset": config.dataset, "classes": ",".join(class_names)}


def _config_record(config: TrainConfig, dataset: Dataset, model: MLP,
                   command: list[str] | None) -> dict[str, Any]:
    return {
        "command": command if command is not None else command_line(),
        "config": config.to_dict(),
        "sizes": model.sizes,
        "class_names": list(dataset.class_names),
        "device": str(config.resolved_device()),
        "versions": versions(),
    }
