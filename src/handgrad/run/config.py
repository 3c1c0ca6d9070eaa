"""`TrainConfig`: every setting of one training run, validated before any work is done."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from handgrad.data import DATASETS, Dataset, load_dataset
from handgrad.engine.activations import ACTIVATIONS
from handgrad.engine.errors import SettingError
from handgrad.engine.losses import LOSSES
from handgrad.engine.networks import MODELS

ENGINES = ("manual", "autograd")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
EXERCISE_HIDDEN = (512, 128, 32)
RECORDED = ("dataset", "data_dir", "classes", "standardize", "hidden", "activation", "loss",
            "engine", "optimizer", "lr", "momentum", "weight_decay", "nesterov", "betas",
            "epochs", "batch_size", "val_fraction", "seed", "device", "dtype")  # in config.json
MAX_SEED = 2**32 - 1  # numpy's bound, the tightest of the generators a seed reaches


@dataclass
class TrainConfig:
    """The defaults reproduce the classic exercise: CIFAR-10 airplane vs automobile,
    3072→512→128→32→2 ReLU, cross-entropy on one-hot targets, SGD, batch 64."""

    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    classes: tuple[str, ...] | None = None
    standardize: bool = False
    model: str = "mlp"  # MODELS: the exercise's MLP, or a network of engine/layers
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
        _choice("model", self.model, MODELS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("engine", self.engine, ENGINES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        self._validate_types()
        self._validate_dtype_range()
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
               "nesterov needs optimizer sgd and momentum > 0", "optimizer", "momentum")
        _check(self.optimizer == "sgd" or self.momentum == 0,
               f"momentum applies to sgd only (adam uses betas), got {self.momentum}")
        _check(all(0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), got {self.betas}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(0 < self.val_fraction < 1,
               f"val_fraction must be in (0, 1), got {self.val_fraction}")
        _check(all(h >= 1 for h in self.hidden), f"hidden widths must be >= 1, got {self.hidden}")
        check_seed(self.seed)
        _check(isinstance(self.keep_denormals, bool),
               f"keep_denormals must be true or false, got {self.keep_denormals!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise SettingError("device cuda: CUDA is not available here (try device auto)",
                               "device")
        return self

    def _validate_types(self) -> None:
        """Every number finite and of its kind, every flag a bool (a config read from a file,
        or built in Python, may hold anything)."""
        for name in ("lr", "momentum", "weight_decay", "val_fraction"):
            _real(name, getattr(self, name))
        for name in ("epochs", "batch_size"):
            _integer(name, getattr(self, name))
        for name in ("download", "standardize", "nesterov"):
            _check(isinstance(getattr(self, name), bool),
                   f"{name} must be true or false, got {getattr(self, name)!r}")
        _check(isinstance(self.hidden, tuple), f"hidden must be widths, got {self.hidden!r}")
        for h in self.hidden:
            _integer("hidden", h)
        _check(isinstance(self.betas, tuple) and len(self.betas) == 2,
               f"betas must be two numbers, got {self.betas!r}")
        for b in self.betas:
            _real("betas", b)
        _check(self.classes is None or (isinstance(self.classes, tuple)
                                        and all(isinstance(c, str) for c in self.classes)),
               f"classes must be class names or indices, got {self.classes!r}")
        _check(isinstance(self.data_dir, str), f"data_dir must be a path, got {self.data_dir!r}")
        _check(_json_object(self.extra),
               f"extra must be a dict of JSON values (it is saved in config.json), got "
               f"{self.extra!r}")

    def _validate_dtype_range(self) -> None:
        """lr and weight decay representable in the dtype the optimizer computes in (a
        float32 run cannot take lr 1e39: torch overflows converting it)."""
        top = torch.finfo(DTYPES[self.dtype]).max
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            _check(abs(value) <= top, f"{name} {value!r} is beyond the largest "
                   f"{self.dtype} ({top:.4g}); use a smaller value")

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
        """The config `to_dict` wrote (unknown keys ignored); ValueError if `d` is not one
        or misses a setting.
        Call `validate()` on the result to check the values."""
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object, got {type(d).__name__}")
        missing = [k for k in RECORDED if k not in d]
        if missing:
            raise ValueError(f"settings missing: {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        for key in ("hidden", "betas", "classes"):
            if kwargs.get(key) is not None:
                if not isinstance(kwargs[key], (list, tuple)):
                    raise ValueError(f"config {key} must be a list, got {kwargs[key]!r}")
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_data(config: TrainConfig, progress: bool | None = None) -> Dataset:
    """The dataset, classes, split and scaling `config` names (downloading if it says so,
    with a bar when `progress`; None: when stderr is a terminal)."""
    return load_dataset(config.dataset, config.data_dir, config.classes, config.val_fraction,
                        config.seed, config.standardize, config.download, progress)


def _choice(setting: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {setting} {value!r}; choose from: {', '.join(choices)}")


def _check(ok: bool, message: str, *others: str) -> None:
    """SettingError(message) unless `ok`: the message starts with the bad setting's name and
    may name `others`."""
    if not ok:
        raise SettingError(message, message.split()[0], *others)


def _real(name: str, value: Any) -> None:
    """A finite int or float (bools, strings, NaN and infinities refused)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
    _check(ok, f"{name} must be a finite number, got {value!r}")


def _integer(name: str, value: Any) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool),
           f"{name} must be an integer, got {value!r}")


def _json_object(value: Any) -> bool:
    """A dict with text keys that strict JSON can hold (no NaN, no arbitrary objects)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def check_seed(seed: Any) -> int:
    """`seed` if it is an integer in [0, MAX_SEED], which every generator handgrad seeds
    (torch's, and numpy's inside Optuna's sampler) accepts; ValueError otherwise."""
    _check(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED,
           f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed
