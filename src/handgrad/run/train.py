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
from pathlib import Path

import torch

from handgrad.data import Dataset
from handgrad.engine import optim as hand_optim
from handgrad.engine.denormals import denormals_mode
from handgrad.engine.errors import SettingError
from handgrad.engine.flat import FlatParams
from handgrad.engine.losses import Loss, get_loss
from handgrad.engine.model import MLP
from handgrad.engine.networks import build_network
from handgrad.engine.sequential import Sequential
from handgrad.run.config import TrainConfig, load_data
from handgrad.run.health import HealthRecorder, model_probe
from handgrad.run.memory_estimate import check_fits, training_bytes
from handgrad.run.metrics import evaluate, one_hot, per_sample_sum
from handgrad.run.run_result import EpochMetrics, RunResult
from handgrad.run.rundir import RunDir, check_out

__all__ = ["EpochMetrics", "Observer", "RunResult", "train"]  # the results live in run_result.py

Tensor = torch.Tensor
CHECK_EVERY = 25
OPTIMIZER_CLASSES = {
    "manual": {"sgd": hand_optim.SGD, "adam": hand_optim.Adam, "adamw": hand_optim.AdamW},
    "autograd": {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW},
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


def build_model(config: TrainConfig, D: int, num_classes: int,
                image_shape: tuple[int, int, int] | None = None) -> MLP | Sequential:
    """The network, initialised from `config.seed` on the CPU (identical on every device):
    the exercise's MLP, or for `config.model` "cnn" / "mlp-bn" a `Sequential` of the
    hand-written layers for images of `image_shape` (C, H, W)."""
    torch.manual_seed(config.seed)
    if config.model == "mlp":
        model = MLP(sizes_for(config, D, num_classes), activation=config.activation,
                    dtype=config.torch_dtype)
    elif image_shape is None:
        raise ValueError(f"model {config.model!r} needs the images' shape (C, H, W)")
    else:
        model = build_network(config.model, image_shape, config.hidden, num_classes,
                              config.activation, config.seed, config.torch_dtype)
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
    (default: `FlatParams`' choice for the device and thread count). `train` runs the steps
    with subnormals flushed to zero on every thread unless `config.keep_denormals`.
    """
    if config.engine == "manual" and isinstance(model, Sequential):
        return layers_step(config, model, loss)
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


def layers_step(config: TrainConfig, model: Sequential, loss: Loss,
                ) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The manual engine's step for a `Sequential`: every layer's hand-written backward sets
    its parameters' .grad (no zeroing needed), then a handgrad.engine.optim step."""
    opt = build_optimizer(config, model.parameters())

    @torch.no_grad()
    def manual_layers_step(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        y_pred = model(x)
        value, dL_dy = loss.value_and_grad(y_pred, t)
        model.backward(dL_dy)   # each layer's *_backward, from the output down
        opt.step()
        return y_pred, value

    return manual_layers_step


def _check_finite(step_losses: Tensor, upto: int, epoch: int, config: TrainConfig) -> None:
    bad = ~torch.isfinite(step_losses[:upto])
    if bad.any():
        step = int(torch.nonzero(bad)[0]) + 1
        value = step_losses[step - 1].item()
        raise Diverged(
            f"loss became {value} at epoch {epoch}, step {step}; "
            f"{_lower_hint(config)}"
        )


def _lower_hint(config: TrainConfig) -> str:
    """What to lower: the learning rate, and the weight decay when it is large enough to be
    the likely cause (lr x weight decay >= 1 makes the decay step overshoot)."""
    if config.weight_decay > 0 and config.lr * config.weight_decay >= 1:
        return (f"try a lower weight_decay than {config.weight_decay:g} or a lower "
                f"learning rate than lr {config.lr:g}")
    return f"try a lower learning rate than lr {config.lr:g}"


def train_epoch(epoch: int, step_fn, dataset: Dataset, config: TrainConfig, loss: Loss,
                gen: torch.Generator, observer: Observer, health: HealthRecorder | None = None,
                ) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) over its samples.
    `health` (when given) sees every step (see health.py)."""
    health = health or HealthRecorder(list)  # a probe of no layer: records nothing
    n = len(dataset.train)
    steps = -(-n // config.batch_size)
    device, dtype, k = dataset.train.x.device, config.torch_dtype, dataset.num_classes
    step_losses = torch.empty(steps, dtype=torch.float64, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    observer.epoch_start(epoch, steps)
    health.start_epoch()
    for i, (x, y) in enumerate(dataset.batches(dataset.train, config.batch_size, gen, dtype)):
        health.before_step(last=i == steps - 1)
        y_pred, value = step_fn(x, one_hot(y, k, dtype))
        health.after_step()
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

    Everything is checked before the folder is touched: the settings, the data, the memory
    the network needs, and the folder itself (`RunDir.check_reusable`). Then config.json is
    written, metrics.csv after every epoch, and the weights and results.json last, so the
    directory is consistent at every moment. A NaN/inf loss ends the run with status
    "diverged" (no weights saved).
    """
    config.validate()
    observer = observer or Observer()
    if dataset is None:
        dataset = load_data(config)
    run_dir = preflight(config, dataset, out_dir)
    if run_dir is None:
        return _train_into(config, dataset, None, observer, evaluate_test, command)
    with run_dir.locked():
        return _train_into(config, dataset, run_dir, observer, evaluate_test, command)


def _train_into(config: TrainConfig, dataset: Dataset, run_dir: RunDir | None,
                observer: Observer, evaluate_test: bool, command: list[str] | None
                ) -> RunResult:
    """`train` once its checks have passed (and `run_dir`'s lock is held)."""
    if run_dir is not None:
        run_dir.start(config, dataset.class_names, sizes_for(config, dataset.D,
                      dataset.num_classes), command)
    dataset = dataset.to(config.resolved_device())
    model = build_model(config, dataset.D, dataset.num_classes, dataset.image_shape)
    # flush-to-zero on every thread while training, the caller's mode restored after
    # (see engine/denormals.py)
    with denormals_mode(flush=not config.keep_denormals):
        result = fit(config, dataset, model, observer, run_dir)
        if result.status == "completed" and evaluate_test:
            result.test = evaluate(model, dataset, dataset.test, get_loss(config.loss),
                                   config.torch_dtype)
    if run_dir is not None:
        run_dir.finish(result)
    return result


def preflight(config: TrainConfig, dataset: Dataset, out_dir: str | Path | None
              ) -> RunDir | None:
    """Refuse, before anything is written, a network that does not fit in memory or an
    `out_dir` that holds something else than a run of these settings."""
    sizes = sizes_for(config, dataset.D, dataset.num_classes)
    batch = min(config.batch_size, max(len(dataset.train), 1))
    check_fits(training_bytes(sizes, config.torch_dtype, config.optimizer, max(batch, 256)),
               config.resolved_device(), f"hidden {' '.join(map(str, config.hidden))} (a "
               f"{'-'.join(map(str, sizes))} network)", "hidden")
    _check_batch_norm_batches(config, len(dataset.train))
    out_dir = check_out(out_dir)
    if out_dir is None:
        return None
    run_dir = RunDir(out_dir)
    run_dir.check_reusable(config, dataset.class_names)
    return run_dir


def _check_batch_norm_batches(config: TrainConfig, N: int) -> None:
    """Batch norm cannot normalise a batch of one sample: refuse a batch_size whose
    epochs end with one (N training samples), as torch.nn.BatchNorm1d would fail there."""
    if config.model == "mlp-bn" and config.hidden and 1 in (config.batch_size,
                                                             N % config.batch_size):
        raise SettingError(f"batch_size {config.batch_size} makes a batch of 1 sample of the "
                           f"{N} training samples, which the batch norm of model mlp-bn "
                           "cannot normalise; choose another batch_size", "batch_size")


def fit(config: TrainConfig, dataset: Dataset, model: MLP, observer: Observer,
        run_dir: RunDir | None) -> RunResult:
    """The epochs: train, validate, record; stops at the first non-finite loss."""
    loss = get_loss(config.loss)
    step_fn = make_step(config, model, loss)
    gen = torch.Generator().manual_seed(config.seed)
    result = RunResult(config, dataset.class_names, model=model)
    health = HealthRecorder(model_probe(model))
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        try:
            train_loss, train_acc = train_epoch(epoch, step_fn, dataset, config, loss, gen,
                                                observer, health)
        except Diverged as e:
            result.status, result.message = "diverged", str(e)
            break
        seconds = time.perf_counter() - start
        val = evaluate(model, dataset, dataset.val, loss, config.torch_dtype)
        if not math.isfinite(val.loss):
            result.status = "diverged"
            result.message = (f"validation loss became {val.loss} after epoch {epoch}; "
                              f"{_lower_hint(config)}")
            break
        metrics = EpochMetrics(epoch, train_loss, train_acc, val.loss, val.accuracy, seconds)
        result.history.append(metrics)
        result.layers += health.end_epoch(epoch)
        observer.epoch_end(metrics)
        if run_dir is not None:
            run_dir.write_metrics(result.history, result.layers)
    return result
