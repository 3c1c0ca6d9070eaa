"""An image classification dataset kept as uint8, split train / val / test, batched by a
seeded permutation.

Images stay uint8 `(N, D)` in memory and become floats one batch at a time:
`x = u8 / scale` (as `ToTensor()`: [0, 1]), then optionally `(x - mean_c) / std_c` with
per-channel statistics from the training split only. The test split is only for final
evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from handgrad.data import cifar10
from handgrad.data.download import download_cifar10

Tensor = torch.Tensor
DATASETS = ("cifar10", "digits")
DEFAULT_CLASSES = {"cifar10": ("airplane", "automobile"), "digits": ("3", "8")}
DIGIT_NAMES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class Split:
    """Images `x` uint8 (N, D) and labels `y` int64 (N,) in 0..k-1."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Dataset:
    """Three splits of one class subset, with what is needed to turn uint8 into inputs."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    scale: float
    train: Split
    val: Split
    test: Split
    mean: Tensor | None = None  # (D,) per-channel mean of the training split, repeated
    std: Tensor | None = None   # (D,)

    @property
    def D(self) -> int:
        return self.train.x.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on `device` (still uint8)."""
        stats = [None if t is None else t.to(device) for t in (self.mean, self.std)]
        return Dataset(self.name, self.class_names, self.image_shape, self.scale,
                       self.train.to(device), self.val.to(device), self.test.to(device), *stats)

    def inputs(self, x_u8: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """uint8 (N, D) -> float (N, D): x / scale, standardised when statistics are set."""
        x = x_u8.to(dtype).div_(self.scale)
        if self.mean is not None:
            x.sub_(self.mean.to(dtype)).div_(self.std.to(dtype))
        return x

    def batches(self, split: Split, batch_size: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x (B, D) float, y (B,) int64) in the order of a permutation drawn from
        `generator` (in order when None); the last batch may be short."""
        N = len(split)
        order = None if generator is None else torch.randperm(N, generator=generator)
        if order is not None:
            order = order.to(split.x.device)
        for start in range(0, N, batch_size):
            if order is None:
                idx = slice(start, start + batch_size)
                yield self.inputs(split.x[idx], dtype), split.y[idx]
            else:
                idx = order[start:start + batch_size]
                yield self.inputs(split.x[idx], dtype), split.y[idx]


def resolve_classes(requested: Sequence[str | int] | None, names: Sequence[str],
                    dataset: str) -> list[int]:
    """Official indices for class names or indices, in the order given; ValueError otherwise."""
    if requested is None:
        requested = DEFAULT_CLASSES[dataset]
    chosen: list[int] = []
    for item in requested:
        text = str(item).strip()
        if text in names:
            index = list(names).index(text)
        elif text.isdigit() and int(text) < len(names):
            index = int(text)
        else:
            raise ValueError(f"unknown class {text!r} for {dataset}; choose from: "
                             f"{', '.join(names)} (or their indices 0..{len(names) - 1})")
        if index in chosen:
            raise ValueError(f"class {names[index]!r} given twice")
        chosen.append(index)
    if len(chosen) < 2:
        raise ValueError(f"need at least two classes, got {len(chosen)}")
    return chosen


def stratified_split(y: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train_idx, val_idx): round(val_fraction · n_c) of each class c go to validation,
    chosen by a permutation from a generator seeded with `seed`. Both sorted."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).squeeze(1)
        members = members[torch.randperm(len(members), generator=gen)]
        k = int(round(val_fraction * len(members)))
        val.append(members[:k])
        train.append(members[k:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(val)).values


def _select(x: np.ndarray, labels: np.ndarray, official: list[int]) -> Split:
    """Keep the rows of the chosen official classes; relabel them 0..k-1 in the order given."""
    relabel = np.full(max(10, labels.max(initial=0) + 1), -1, dtype=np.int64)
    relabel[official] = np.arange(len(official))
    keep = relabel[labels] >= 0
    return Split(torch.from_numpy(np.ascontiguousarray(x[keep])),
                 torch.from_numpy(relabel[labels[keep]]))


def _channel_stats(x: Tensor, image_shape: tuple[int, int, int],
                   scale: float) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of x / scale, each repeated to (D,)."""
    C = image_shape[0]
    planes = x.reshape(x.shape[0], C, -1).to(torch.float64) / scale
    mean, std = planes.mean(dim=(0, 2)), planes.std(dim=(0, 2)).clamp_min(1e-12)
    per_pixel = planes.shape[2]
    return mean.repeat_interleave(per_pixel), std.repeat_interleave(per_pixel)


def _raw_digits() -> tuple[tuple, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's embedded digits (1,797 8×8 images, values 0..16) as a fixed 80/20
    train/test split by a seeded stratified permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.uint8)
    y = digits.target.astype(np.int64)
    train_idx, test_idx = stratified_split(torch.from_numpy(y), 0.2, seed=1797)
    return (1, 8, 8), x[train_idx.numpy()], y[train_idx.numpy()], x[test_idx.numpy()], \
        y[test_idx.numpy()]


def load_dataset(
    name: str = "cifar10",
    root: str | Path = "data",
    classes: Sequence[str | int] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    standardize: bool = False,
    download: bool = False,
) -> Dataset:
    """Load `classes` of dataset `name` ("cifar10" from `root`, or the embedded "digits").

    The validation split is carved from the training set, stratified, by `seed`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")
    if name == "cifar10":
        root = Path(root)
        if download:
            download_cifar10(root)
        names = cifar10.read_meta(root)
        official = resolve_classes(classes, names, name)
        shape, scale = cifar10.IMAGE_SHAPE, 255.0
        train_all = _select(*cifar10.read_split(root, train=True), official)
        test = _select(*cifar10.read_split(root, train=False), official)
    else:
        names = list(DIGIT_NAMES)
        official = resolve_classes(classes, names, name)
        shape, x_tr, y_tr, x_te, y_te = _raw_digits()
        scale = 16.0
        train_all, test = _select(x_tr, y_tr, official), _select(x_te, y_te, official)
    train_idx, val_idx = stratified_split(train_all.y, val_fraction, seed)
    train = Split(train_all.x[train_idx], train_all.y[train_idx])
    val = Split(train_all.x[val_idx], train_all.y[val_idx])
    mean = std = None
    if standardize:
        mean, std = _channel_stats(train.x, shape, scale)
    return Dataset(name, tuple(names[i] for i in official), shape, scale, train, val, test,
                   mean, std)
