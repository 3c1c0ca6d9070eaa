"""`TrainConfig`: every setting of one training run, validated before any work is done."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from handgrad.data import DATASETS, Dataset, load_dataset
from handgrad.engine.activations import ACTIVATIONS
from handgrad.engine.losses import LOSSES

ENGINES = ("manual", "autograd")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
EXERCISE_HIDDEN = (512, 128, 32)


@dataclass
class TrainConfig:
    """The defaults reproduce the classic exercise: CIFAR-10 airplane vs automobile,
    3072→512→128→32→2 ReLU, cross-entropy on one-hot targets, SGD, batch 64."""

    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    classes: tuple[str, ...] | None = None
    standardize: bool = False
    hidden: tuple[int, ...] = EXERCISE_HIDDEN
    activation: str = "relu"
    loss: str = "cross_entropy"
    engine: str = "manual"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 5
    batch_size: int = 64
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    keep_denormals: bool = False  # True: IEEE subnormals instead of flush-to-zero (slower)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first bad setting; return self when all are good."""
        _choice("dataset", self.dataset, DATASETS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("engine", self.engine, ENGINES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        _check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        _check(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        _check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
               "--nesterov needs --optimizer sgd and --momentum > 0")
        _check(self.optimizer == "sgd" or self.momentum == 0,
               f"--momentum applies to sgd only (adam uses betas), got {self.momentum}")
        _check(all(0 <= b < 1 for b in self.betas), f"--betas must be in [0, 1), got {self.betas}")
        _check(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        _check(0 < self.val_fraction < 1,
               f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        _check(all(h >= 1 for h in self.hidden), f"--hidden widths must be >= 1, got {self.hidden}")
        _check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        _check(isinstance(self.keep_denormals, bool),
               f"keep_denormals must be true or false, got {self.keep_denormals!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: CUDA is not available here (try --device auto)")
        return self

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"], d["betas"] = list(self.hidden), list(self.betas)
        d["classes"] = None if self.classes is None else list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        for key in ("hidden", "betas", "classes"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_data(config: TrainConfig) -> Dataset:
    """The dataset, classes, split and scaling `config` names (downloading if it says so)."""
    return load_dataset(config.dataset, config.data_dir, config.classes, config.val_fraction,
                        config.seed, config.standardize, config.download)


def _choice(option: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {option} {value!r}; choose from: {', '.join(choices)}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
